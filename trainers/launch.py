"""`thinkforge launch`: the same `thinkforge train ...` command on a SLURM cluster.

It writes two files: an ``accelerate`` config (FSDP2 or DeepSpeed ZeRO-3, bf16; started
from TRL's own ``accelerate_configs``) and an ``sbatch`` script that, on N nodes x G GPUs:

1. pulls the training data to node-local disk on every node (``thinkforge pull``; each node
   verifies every shard's sha256) and trains from the pulled ``manifest.json`` (the exact
   version is pinned when the script is written: ``name@vN``);
2. for GRPO/RLOO with ``--vllm-nodes K``: starts ``trl vllm-serve`` on the last K nodes,
   waits for its health check, and passes ``--use-vllm --vllm-mode server`` and the host;
3. runs one task per training node: ``srun accelerate launch --num_machines N
   --num_processes G*N --machine_rank \\$SLURM_NODEID`` with a c10d rendezvous on the first
   node and ``--kill-on-bad-exit``.  ``$SLURM_NODEID`` is escaped inside the ``bash -c``
   body so each node expands its own rank (unescaped, the batch host expands it once to 0
   for every node: a known bug in public launch scripts).

Run records are published into the shared ``--store`` by rank 0.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkforge.manifests.errors import ConfigError, ForgeError

RL_METHODS = ("grpo", "rloo")


@dataclass
class LaunchSpec:
    train_args: list[str]                 # everything after `--`: ["train", "sft", "--data", ...]
    nodes: int
    gpus_per_node: int = 8
    vllm_nodes: int = 0
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    job_name: str | None = None
    distributed: str = "fsdp2"            # fsdp2 | zero3
    store: str = "./forge-store"
    local_dir: str = "/tmp/thinkforge-$SLURM_JOB_ID"
    port: int = 29500
    vllm_port: int = 8000
    vllm_tensor_parallel: int = 1
    python: str = "python"
    setup: list[str] = field(default_factory=list)   # lines run first on every node (module load ...)
    out_dir: str = "."

    @property
    def method(self) -> str:
        if len(self.train_args) < 2 or self.train_args[0] != "train":
            raise ConfigError("launch runs a training command: thinkforge launch ... -- train "
                              "METHOD --data REF --model M --output DIR",
                              hint=f"got: {' '.join(self.train_args) or '(nothing after --)'}")
        return self.train_args[1]

    @property
    def train_nodes(self) -> int:
        return self.nodes - self.vllm_nodes


def option_value(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def replace_option(args: list[str], name: str, value: str) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == name:
            out += [name, value]
            skip = True
        elif arg.startswith(name + "="):
            out.append(f"{name}={value}")
        else:
            out.append(arg)
    return out


def validate(spec: LaunchSpec) -> None:
    method = spec.method
    if spec.nodes < 1 or spec.gpus_per_node < 1:
        raise ConfigError("--nodes and --gpus-per-node must be at least 1")
    if spec.vllm_nodes:
        if method not in RL_METHODS:
            raise ConfigError(f"--vllm-nodes is for GRPO/RLOO (online generation); {method} "
                              "does not generate", hint="drop --vllm-nodes")
        if spec.vllm_nodes >= spec.nodes:
            raise ConfigError(f"--vllm-nodes {spec.vllm_nodes} leaves no node to train on "
                              f"(--nodes {spec.nodes})", hint="use more nodes or fewer vLLM nodes")
    if spec.distributed not in ("fsdp2", "zero3"):
        raise ConfigError(f"--distributed {spec.distributed!r}: use fsdp2 or zero3")
    for required in ("--data", "--model", "--output"):
        if option_value(spec.train_args, required) is None:
            raise ConfigError(f"the train command needs {required}",
                              hint="thinkforge launch ... -- train sft --data REF --model M --output DIR")


def accelerate_config(spec: LaunchSpec) -> dict[str, Any]:
    """TRL's accelerate config for the backend, sized for the job (rank and host come from
    the command line of each node)."""
    base = _trl_accelerate_config("fsdp2" if spec.distributed == "fsdp2" else "zero3")
    base.update({"num_machines": spec.train_nodes,
                 "num_processes": spec.train_nodes * spec.gpus_per_node,
                 "machine_rank": 0, "mixed_precision": "bf16", "rdzv_backend": "c10d",
                 "same_network": True, "main_process_port": spec.port, "use_cpu": False})
    return base


def _trl_accelerate_config(name: str) -> dict[str, Any]:
    """TRL ships these as trl/accelerate_configs/*.yaml; a copy is used when TRL is absent."""
    from importlib.resources import files

    import yaml

    try:
        text = (files("trl") / "accelerate_configs" / f"{name}.yaml").read_text()
    except (ImportError, OSError):
        return dict(_FALLBACK[name])
    return yaml.safe_load(text)


_COMMON = {"compute_environment": "LOCAL_MACHINE", "debug": False, "downcast_bf16": "no",
           "main_training_function": "main", "machine_rank": 0, "mixed_precision": "bf16",
           "num_machines": 1, "num_processes": 8, "rdzv_backend": "static", "same_network": True,
           "tpu_env": [], "tpu_use_cluster": False, "tpu_use_sudo": False, "use_cpu": False}
_FALLBACK = {
    "fsdp2": {**_COMMON, "distributed_type": "FSDP", "enable_cpu_affinity": False, "fsdp_config": {
        "fsdp_activation_checkpointing": False, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,
        "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
        "fsdp_version": 2}},
    "zero3": {**_COMMON, "distributed_type": "DEEPSPEED", "deepspeed_config": {
        "deepspeed_multinode_launcher": "standard", "offload_optimizer_device": "none",
        "offload_param_device": "none", "zero3_init_flag": True, "zero3_save_16bit_model": True,
        "zero_stage": 3}},
}


def _pinned_data(spec: LaunchSpec, store) -> tuple[str | None, str]:
    """(ref to pull, --data value on the nodes).  A store reference is pinned to name@vN and
    pulled to node-local disk; a manifest path is used as it is (already local)."""
    data = option_value(spec.train_args, "--data")
    if data.endswith(".json"):
        return None, data
    ref = data
    if store is not None:
        try:
            manifest = store.resolve(data)
        except ForgeError:  # not in this store: a name@vN given as it is still works
            manifest = None
        if manifest is not None:
            return manifest.ref, \
                f"{spec.local_dir}/datasets/{manifest.name}/{manifest.version}/manifest.json"
    name, _, version = ref.partition("@")
    if not version.startswith("v"):
        raise ConfigError(f"cannot pin --data {data!r}: it is not in store {spec.store}",
                          hint="give name@vN, or run launch where the store is visible")
    return ref, f"{spec.local_dir}/datasets/{name}/{version}/manifest.json"


def sbatch_script(spec: LaunchSpec, config_path: str, store=None) -> str:
    validate(spec)
    method = spec.method
    pull_ref, node_data = _pinned_data(spec, store)
    args = replace_option(list(spec.train_args), "--data", node_data)
    vllm = spec.vllm_nodes > 0
    if vllm:
        args += ["--use-vllm", "--vllm-mode", "server", "--vllm-server-host", "__VLLM_HOST__",
                 "--vllm-server-port", str(spec.vllm_port)]
    model = option_value(spec.train_args, "--model")
    train_cmd = " ".join(shlex.quote(a) for a in args).replace("__VLLM_HOST__", "$VLLM_HOST")
    q = shlex.quote
    job = spec.job_name or f"thinkforge-{method}"
    lines = ["#!/bin/bash",
             f"# written by `thinkforge launch`: {spec.nodes} nodes x {spec.gpus_per_node} GPUs, "
             f"{spec.train_nodes} training" + (f", {spec.vllm_nodes} vLLM" if vllm else ""),
             f"#SBATCH --job-name={job}",
             f"#SBATCH --nodes={spec.nodes}",
             "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --gpus-per-node={spec.gpus_per_node}",
             "#SBATCH --exclusive",
             f"#SBATCH --output={spec.out_dir}/%x-%j.out"]
    for flag, value in (("partition", spec.partition), ("account", spec.account),
                        ("time", spec.time)):
        if value:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += ["set -euo pipefail", *spec.setup, "",
              f"STORE={q(spec.store)}",
              f"LOCAL_DIR={spec.local_dir}            # node-local disk",
              f"ACCELERATE_CONFIG={q(config_path)}",
              f"TRAIN_NODES={spec.train_nodes}",
              f"GPUS_PER_NODE={spec.gpus_per_node}",
              'mapfile -t HOSTS < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
              'MAIN_HOST=${HOSTS[0]}',
              f"MAIN_PORT={spec.port}",
              'TRAIN_HOSTS=$(IFS=,; echo "${HOSTS[*]:0:$TRAIN_NODES}")',
              ""]
    if pull_ref:
        lines += ["# 1. the data on node-local disk, verified on every node (sha256 of every shard)",
                  'srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \\',
                  f'    thinkforge --store "$STORE" --quiet pull {q(pull_ref)} --to "$LOCAL_DIR"', ""]
    if vllm:
        lines += ["# 2. vLLM generation server(s) on the last node(s); training waits for health",
                  f"VLLM_NODES={spec.vllm_nodes}",
                  'VLLM_HOST=${HOSTS[$TRAIN_NODES]}',
                  'VLLM_HOSTS=$(IFS=,; echo "${HOSTS[*]:$TRAIN_NODES}")',
                  ('srun --nodes="$VLLM_NODES" --ntasks-per-node=1 --nodelist="$VLLM_HOSTS" '
                   '--kill-on-bad-exit=1 \\'),
                  (f'    trl vllm-serve --model {q(model)} '
                   f'--tensor-parallel-size {spec.vllm_tensor_parallel} '
                   f'--data-parallel-size $((GPUS_PER_NODE / {spec.vllm_tensor_parallel})) '
                   f'--host 0.0.0.0 --port {spec.vllm_port} &'),
                  "VLLM_PID=$!",
                  "for _ in $(seq 1 360); do",
                  f'    if curl -sf "http://$VLLM_HOST:{spec.vllm_port}/health/" >/dev/null; then break; fi',
                  '    if ! kill -0 "$VLLM_PID" 2>/dev/null; then echo "vLLM server exited" >&2; exit 1; fi',
                  "    sleep 5",
                  "done",
                  (f'curl -sf "http://$VLLM_HOST:{spec.vllm_port}/health/" >/dev/null || '
                   '{ echo "vLLM server not healthy after 30 min" >&2; exit 1; }'), ""]
    lines += [(f"# {'3' if vllm else '2'}. training: one task per node; each node expands its "
               "own \\$SLURM_NODEID (escaped)"),
              ('srun --nodes="$TRAIN_NODES" --ntasks-per-node=1 --nodelist="$TRAIN_HOSTS" '
               '--kill-on-bad-exit=1 \\'),
              '    bash -c "accelerate launch --config_file $ACCELERATE_CONFIG \\',
              '        --num_machines $TRAIN_NODES --num_processes $((TRAIN_NODES * GPUS_PER_NODE)) \\',
              '        --machine_rank \\$SLURM_NODEID \\',
              '        --main_process_ip $MAIN_HOST --main_process_port $MAIN_PORT \\',
              '        --rdzv_backend c10d --same_network \\',
              f'        --module thinkforge --store $STORE {_escape_dq(train_cmd)}"']
    if vllm:
        lines += ['kill "$VLLM_PID" 2>/dev/null || true']
    return "\n".join(lines) + "\n"


def _escape_dq(text: str) -> str:
    """Make single-quoted shell words safe inside the double-quoted ``bash -c`` body."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")


def write_launch(spec: LaunchSpec, out_dir: Path, store=None) -> dict[str, Any]:
    """Write ``accelerate.yaml`` and ``launch.sbatch`` into ``out_dir``; return both texts."""
    import yaml

    validate(spec)
    out_dir = Path(out_dir)
    config_path = out_dir.resolve() / "accelerate.yaml"
    spec.out_dir = str(out_dir.resolve())
    config_text = yaml.safe_dump(accelerate_config(spec), sort_keys=True)
    script = sbatch_script(spec, str(config_path), store)
    return {"accelerate_config": config_text, "sbatch": script,
            "paths": {"accelerate_config": str(config_path),
                      "sbatch": str(out_dir.resolve() / "launch.sbatch")}}
