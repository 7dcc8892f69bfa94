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
                     "--output", "o", "--num-generations", "12", "--per-device-train-batch-size", "1")
    assert result.exit_code == 0, result.output
    assert "accelerate.yaml" in result.output and "launch.sbatch" in result.output
    assert "pull toy-pool@v1" in result.output          # pinned to the exact version
    assert not (tmp_path / "l").exists()
    written = cli_run("launch", "--nodes", "2", "--out", str(tmp_path / "l"), "--no-submit", "--",
                      "train", "sft", "--data", "toy-pool@v1", "--model", "m", "--output", "o")
    assert written.exit_code == 0, written.output
    assert (tmp_path / "l" / "launch.sbatch").is_file() and (tmp_path / "l" / "accelerate.yaml").is_file()


def _model_folder(tmp_path) -> Path:
    folder = tmp_path / "models" / "sft"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_alignment_is_checked_for_the_cluster_world_size(cli_run, pool_version, tmp_path):
    """4 nodes x 8 GPUs - 1 vLLM node = 24 processes cannot draw the pool's curriculum batch of
    2 prompts x 4 generations: refused at --dry-run and before writing/submitting, with what works."""
    model = str(_model_folder(tmp_path))
    train = ["--", "train", "grpo", "--data", "toy-pool", "--model", model, "--output", "o"]
    out = tmp_path / "l"
    for mode in ("--dry-run", "--no-submit"):
        refused = cli_run("launch", "--nodes", "4", "--vllm-nodes", "1", "--out", str(out), mode, *train)
        assert refused.exit_code == ConfigError.exit_code, refused.output
        assert "curriculum batch size is 2" in refused.output
        assert "no per-device batch size works at world size 24" in refused.output
        assert "--num-generations 12" in refused.output        # 2 x 12 = 24 completions
        assert not out.exists()
    # 3 nodes x 2 GPUs - 1 = 4 processes: per-device 4 cannot, 1 and 2 can (the hint lists them)
    small = ["launch", "--nodes", "3", "--gpus-per-node", "2", "--vllm-nodes", "1", "--dry-run"]
    refused = cli_run(*small, *train)
    assert refused.exit_code == ConfigError.exit_code
    assert "per-device batch sizes that work at world size 4: 1 (--gradient-accumulation-steps 2), " \
           "2 (--gradient-accumulation-steps 1)" in refused.output
    fits = cli_run(*small, *train, "--per-device-train-batch-size", "2")
    assert fits.exit_code == 0, fits.output
    assert "batches line up at world size 4: 2 prompts per optimiser step" in fits.output


def test_vllm_layout_and_health_path(tmp_path, monkeypatch):
    trl = pytest.importorskip("trl")
    import re

    with pytest.raises(ConfigError, match="one server at one host:port"):
        _script(tmp_path, vllm_nodes=2)
    with pytest.raises(ConfigError, match="needs 16 GPUs"):
        _script(tmp_path, vllm_nodes=1, vllm_tensor_parallel=4, vllm_data_parallel=4)
    with pytest.raises(ConfigError, match="without a vLLM node"):
        _script(tmp_path, vllm_tensor_parallel=2)
    _, written = _script(tmp_path, vllm_nodes=1, vllm_tensor_parallel=4, vllm_data_parallel=2)
    text = written["sbatch"]
    assert "--tensor-parallel-size 4 --data-parallel-size 2" in text
    # the path TRL's client checks before it generates (trl.generation.vllm_client)
    client = Path(trl.__file__).parent / "generation" / "vllm_client.py"  # read: needs no vllm
    source = client.read_text().partition("def check_server")[2]
    path = re.search(r'url = f"\{self\.base_url\}(/[^"]*)"', source).group(1)
    polled = re.findall(r'curl -sf "http://\$VLLM_HOST:8000(/[^"]*)"', text)
    assert polled and set(polled) == {path}


def test_model_resolves_on_the_nodes(tmp_path, monkeypatch):
    """A relative folder is made absolute, the embedded name becomes its converted folder,
    in both the vLLM server and the train command."""
    folder = _model_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["train", "grpo", "--data", "toy-pool@v1", "--model", "models/sft", "--output", "o"]
    _, written = _script(tmp_path, args=args, vllm_nodes=1)
    assert f"vllm-serve --model {folder}" in written["sbatch"]
    assert f"--model {folder} " in written["sbatch"].split("accelerate launch")[1]
    cache = tmp_path / "cache"
    embedded = cache / "models" / "smollm2-135m"
    embedded.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (embedded / name).write_text("{}")
    monkeypatch.setenv("THINKFORGE_CACHE", str(cache))
    _, written = _script(tmp_path, args=[*args[:5], "smollm2-135m", *args[6:]], vllm_nodes=1)
    assert f"vllm-serve --model {embedded}" in written["sbatch"]
    assert any("filesystem they share" in n for n in written["notes"])
    _, written = _script(tmp_path, args=[*args[:5], "org/name", *args[6:]], vllm_nodes=1)
    assert "vllm-serve --model org/name" in written["sbatch"]           # a hub id stays one
    assert any("hub id" in n for n in written["notes"])
    with pytest.raises(ConfigError, match="not a folder here"):
        _script(tmp_path, args=[*args[:5], "no/such/folder", *args[6:]])


def test_checkpointing_and_zero3_extra(tmp_path, cli_run, sft_version):
    import importlib.util

    sft = ["train", "sft", "--data", "toy-sft@v1", "--model", "m/x", "--output", "o"]
    _, written = _script(tmp_path, args=sft, nodes=2)
    assert yaml.safe_load(written["accelerate_config"])["fsdp_config"]["fsdp_activation_checkpointing"]
    assert "--no-gradient-checkpointing" in written["sbatch"]   # transformers refuses both on
    _, written = _script(tmp_path, args=sft, nodes=2, activation_checkpointing=False)
    assert not yaml.safe_load(written["accelerate_config"])["fsdp_config"]["fsdp_activation_checkpointing"]
    assert "gradient-checkpointing" not in written["sbatch"]    # TRL's default: on
    with pytest.raises(ConfigError, match="cannot both be on"):
        _script(tmp_path, args=[*sft, "--gradient-checkpointing"], nodes=2)
    _, written = _script(tmp_path, args=sft, nodes=2, distributed="zero3")
    assert "gradient-checkpointing" not in written["sbatch"]
    result = cli_run("launch", "--nodes", "2", "--distributed", "zero3", "--dry-run", "--", *sft)
    assert result.exit_code == 0, result.output
    if importlib.util.find_spec("deepspeed") is None:
        assert "pip install 'thinkforge[zero3]'" in result.output


def test_gradient_checkpointing_defaults_to_trl(tmp_path):
    pytest.importorskip("trl")
    from thinkforge.trainers.base import trl_args
    from thinkforge.trainers.registry import config_model, get_method

    for method in ("sft", "grpo", "dpo"):
        assert trl_args(get_method(method), config_model(method)(), tmp_path).gradient_checkpointing
    off = config_model("sft")(gradient_checkpointing=False)
    assert not trl_args(get_method("sft"), off, tmp_path).gradient_checkpointing
