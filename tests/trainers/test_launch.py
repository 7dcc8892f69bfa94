"""`thinkforge launch`: the sbatch script parses, each node expands its own rank, dry run."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from thinkforge.manifests.errors import ConfigError
from thinkforge.trainers.launch import LaunchSpec, write_launch

GRPO = ["train", "grpo", "--data", "toy-pool@v1", "--model", "out/sft", "--output", "out/grpo",
        "--max-steps", "10"]


def _fake_bin(folder: Path, log: Path) -> Path:
    """srun runs its command once per node with that node's SLURM_NODEID (like SLURM);
    accelerate, thinkforge, trl and curl only log how they were called."""
    folder.mkdir()
    scripts = {
        "scontrol": 'for i in $(seq 0 $((SLURM_NNODES - 1))); do echo "node$i"; done',
        "srun": (
            'nodes=$SLURM_NNODES; list=""\n'
            'while [[ $1 == --* ]]; do case $1 in --nodes=*) nodes=${1#--nodes=}; nodes=${nodes//\\"/};;'
            ' --nodelist=*) list=${1#--nodelist=};; esac; shift; done\n'
            'IFS=, read -ra hosts <<< "$list"\n'
            'for i in $(seq 0 $((nodes - 1))); do\n'
            '  id=$i; if [[ -n $list ]]; then id=${hosts[$i]#node}; fi\n'
            '  SLURM_NODEID=$id SLURM_PROCID=$id "$@" || exit $?\n'
            'done'),
        "accelerate": f'echo "accelerate node=$SLURM_NODEID $*" >> {log}',
        "thinkforge": f'echo "thinkforge node=$SLURM_NODEID $*" >> {log}',
        "trl": f'echo "trl node=$SLURM_NODEID $*" >> {log}',
        "curl": "exit 0",
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text("#!/bin/bash\n" + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def _script(tmp_path, **kw) -> tuple[Path, dict]:
    spec = LaunchSpec(train_args=kw.pop("args", GRPO), nodes=kw.pop("nodes", 4),
                      store=str(tmp_path / "store"), **kw)
    written = write_launch(spec, tmp_path / "launch")
    path = tmp_path / "launch.sbatch"
    path.write_text(written["sbatch"])
    return path, written


def test_script_parses_and_every_node_gets_its_own_rank(tmp_path):
    script, written = _script(tmp_path, vllm_nodes=1, partition="h100", account="proj",
                              time="04:00:00")
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = written["sbatch"]
    assert "--machine_rank \\$SLURM_NODEID" in text and "--kill-on-bad-exit=1" in text
    assert "#SBATCH --nodes=4" in text and "#SBATCH --partition=h100" in text
    log = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{_fake_bin(tmp_path / 'bin', log)}:{os.environ['PATH']}",
           "SLURM_JOB_NODELIST": "node[0-3]", "SLURM_NNODES": "4", "SLURM_JOB_ID": "77",
           "SLURM_NODEID": "0"}  # the batch host is node 0: an unescaped rank would be 0 everywhere
    run = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines()
    pulls = [c for c in calls if c.startswith("thinkforge") and " pull " in c]
    assert len(pulls) == 4 and all("toy-pool@v1 --to /tmp/thinkforge-77" in c for c in pulls)
    serves = [c for c in calls if c.startswith("trl")]
    assert serves == [c for c in serves if "node=3" in c] and "vllm-serve --model out/sft" in serves[0]
    launches = [c for c in calls if c.startswith("accelerate")]
    assert len(launches) == 3                          # 3 training nodes, 1 vLLM node
    for rank, call in enumerate(launches):
        assert f"node={rank} " in call
        assert f"--machine_rank {rank} " in call
        assert "--num_machines 3 --num_processes 24" in call
        assert "--main_process_ip node0 --main_process_port 29500 --rdzv_backend c10d" in call
        assert "--data /tmp/thinkforge-77/datasets/toy-pool/v1/manifest.json" in call
        assert "--use-vllm --vllm-mode server --vllm-server-host node3" in call
    config = yaml.safe_load(written["accelerate_config"])
    assert config["distributed_type"] == "FSDP" and config["fsdp_config"]["fsdp_version"] == 2
    assert config["num_machines"] == 3 and config["num_processes"] == 24
    assert config["mixed_precision"] == "bf16" and config["rdzv_backend"] == "c10d"


def test_zero3_sft_without_vllm(tmp_path):
    args = ["train", "sft", "--data", "toy-sft@v2", "--model", "m", "--output", "o"]
    script, written = _script(tmp_path, args=args, nodes=2, distributed="zero3")
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    assert "vllm-serve" not in written["sbatch"]
    config = yaml.safe_load(written["accelerate_config"])
    assert config["distributed_type"] == "DEEPSPEED"
    assert config["deepspeed_config"]["zero_stage"] == 3 and config["num_processes"] == 16


def test_launch_refuses_what_cannot_work(tmp_path):
    with pytest.raises(ConfigError, match="GRPO/RLOO"):
        _script(tmp_path, args=["train", "sft", "--data", "a@v1", "--model", "m", "--output", "o"],
                vllm_nodes=1)
    with pytest.raises(ConfigError, match="no node to train on"):
        _script(tmp_path, nodes=1, vllm_nodes=1)
    with pytest.raises(ConfigError, match="needs --output"):
        _script(tmp_path, args=["train", "sft", "--data", "a@v1", "--model", "m"])


def test_cli_dry_run_prints_both_files(cli_run, pool_version, tmp_path):
    result = cli_run("launch", "--nodes", "4", "--vllm-nodes", "1", "--out", str(tmp_path / "l"),
                     "--dry-run", "--", "train", "grpo", "--data", "toy-pool", "--model", "m",
                     "--output", "o")
    assert result.exit_code == 0, result.output
    assert "accelerate.yaml" in result.output and "launch.sbatch" in result.output
    assert "pull toy-pool@v1" in result.output          # pinned to the exact version
    assert not (tmp_path / "l").exists()
    written = cli_run("launch", "--nodes", "2", "--out", str(tmp_path / "l"), "--no-submit", "--",
                      "train", "sft", "--data", "toy-pool@v1", "--model", "m", "--output", "o")
    assert written.exit_code == 0, written.output
    assert (tmp_path / "l" / "launch.sbatch").is_file() and (tmp_path / "l" / "accelerate.yaml").is_file()
