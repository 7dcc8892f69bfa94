"""`thinkforge launch`: the same `thinkforge train ...` command on a SLURM cluster.

It writes two files: an ``accelerate`` config (FSDP2 or DeepSpeed ZeRO-3, bf16; started
from TRL's own ``accelerate_configs``) and an ``sbatch`` script that, on N nodes x G GPUs:

1. pulls the training data to node-local disk on every node (``thinkforge pull``; each node
   verifies every shard's sha256) and trains from the pulled ``manifest.json`` (the exact
   version is pinned when the script is written: ``name@vN``);
2. for GRPO/RLOO with ``--vllm-nodes 1``: starts ``trl vllm-serve`` on the last node
   (``--vllm-tensor-parallel`` x ``--vllm-data-parallel`` of its GPUs), polls ``/health``
   (the path TRL's ``VLLMClient.check_server`` polls) and passes ``--use-vllm --vllm-mode
   server`` and the host.  More than one vLLM node is refused: TRL 1.16's client talks to
   one server (one host:port), so a second node would sit idle;
3. runs one task per training node: ``srun accelerate launch --num_machines N
   --num_processes G*N --machine_rank \\$SLURM_NODEID`` with a c10d rendezvous on the first
   node and ``--kill-on-bad-exit``.  ``$SLURM_NODEID`` is escaped inside the ``bash -c``
   body so each node expands its own rank (unescaped, the batch host expands it once to 0
   for every node: a known bug in public launch scripts).

Run records are published into the shared ``--store`` by rank 0.

Everything that can be checked before the allocation is checked when the script is
written (``--dry-run`` and submit alike): GRPO/RLOO batch alignment with the curriculum
for the job's world size (training nodes x GPUs), the vLLM layout, and ``--model``, which
is resolved to a path every node can open (a relative folder to an absolute one, the
embedded model to its converted folder).  Under FSDP2, activation checkpointing is on in
the accelerate config and the trainer's own gradient checkpointing is turned off
(transformers refuses both at once); ``--no-activation-checkpointing`` leaves TRL's
default (on).  See docs/training.md, "Cluster launch".
"""

from __future__ import annotations

import importlib.util
import re
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
    vllm_data_parallel: int = 1
    activation_checkpointing: bool = True   # FSDP2: fsdp_activation_checkpointing
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

    @property
    def world_size(self) -> int:
        """Training processes: one per GPU of every training node."""
        return self.train_nodes * self.gpus_per_node


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
        if spec.vllm_nodes > 1:
            raise ConfigError(
                f"--vllm-nodes {spec.vllm_nodes}: TRL's vLLM client (trl 1.16 VLLMClient) talks "
                "to one server at one host:port, so training would use only the first vLLM node "
                "and the others would sit idle",
                hint="use --vllm-nodes 1 and spread the server over that node's GPUs with "
                     "--vllm-tensor-parallel (and --vllm-data-parallel for MoE models)")
    if spec.vllm_tensor_parallel < 1 or spec.vllm_data_parallel < 1:
        raise ConfigError("--vllm-tensor-parallel and --vllm-data-parallel must be at least 1")
    if (spec.vllm_tensor_parallel, spec.vllm_data_parallel) != (1, 1) and not spec.vllm_nodes:
        raise ConfigError("--vllm-tensor-parallel / --vllm-data-parallel size the vLLM server "
                          "of --vllm-nodes 1; without a vLLM node there is none",
                          hint="add --vllm-nodes 1, or drop them")
    if spec.vllm_tensor_parallel * spec.vllm_data_parallel > spec.gpus_per_node:
        raise ConfigError(
            f"--vllm-tensor-parallel {spec.vllm_tensor_parallel} x --vllm-data-parallel "
            f"{spec.vllm_data_parallel} needs {spec.vllm_tensor_parallel * spec.vllm_data_parallel} "
            f"GPUs; the vLLM node has {spec.gpus_per_node}",
            hint="the server runs on one node: keep tensor x data parallel <= --gpus-per-node")
    if spec.distributed == "fsdp2" and spec.activation_checkpointing \
            and _flag_given(spec.train_args, "--gradient-checkpointing"):
        raise ConfigError(
            "--gradient-checkpointing in the train command and FSDP activation checkpointing "
            "cannot both be on (transformers refuses it after the allocation)",
            hint="drop --gradient-checkpointing (FSDP checkpoints activations), or pass "
                 "--no-activation-checkpointing to launch")
    if spec.distributed not in ("fsdp2", "zero3"):
        raise ConfigError(f"--distributed {spec.distributed!r}: use fsdp2 or zero3")
    for required in ("--data", "--model", "--output"):
        if option_value(spec.train_args, required) is None:
            raise ConfigError(f"the train command needs {required}",
                              hint="thinkforge launch ... -- train sft --data REF --model M --output DIR")


def _takes_gradient_checkpointing(method: str) -> bool:
    """A TRL method (built in or a plugin) whose config has the field (distill has not)."""
    from .registry import config_model

    try:
        return "gradient_checkpointing" in config_model(method).model_fields
    except ForgeError:
        return False


def _flag_given(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def accelerate_config(spec: LaunchSpec) -> dict[str, Any]:
    """TRL's accelerate config for the backend, sized for the job (rank and host come from
    the command line of each node); FSDP2 checkpoints activations unless told not to."""
    base = _trl_accelerate_config("fsdp2" if spec.distributed == "fsdp2" else "zero3")
    if spec.distributed == "fsdp2":
        base["fsdp_config"] = {**base.get("fsdp_config", {}),
                               "fsdp_activation_checkpointing": spec.activation_checkpointing}
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

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # gpt2, org/name


def node_model(model: str) -> tuple[str, str | None]:
    """(the ``--model`` value every node can open, a note or None).  A folder becomes its
    absolute path (the nodes do not start in this directory's relatives), the embedded
    model its converted folder under ``$THINKFORGE_CACHE`` (``trl vllm-serve`` cannot read
    the name), a hub id stays as it is."""
    from thinkforge.generators.backends.model_cache import EMBEDDED_MODELS, resolve_model

    if model in EMBEDDED_MODELS:
        folder = resolve_model(model)
        return str(folder), (f"--model {model}: the embedded model's folder {folder} is passed "
                             "to the nodes; it must be on a filesystem they share")
    path = Path(model).expanduser()
    if path.exists() or path.is_absolute() or model.startswith((".", "~")):
        note = None if (path / "config.json").is_file() else (
            f"--model {model}: {path.resolve()} has no config.json yet (an earlier job must "
            "write it before this one starts)")
        return str(path.resolve()), note
    if HUB_ID.match(model):
        return model, (f"--model {model}: no such folder here, passed on as a Hugging Face hub "
                       "id; a folder an earlier job will write is given as ./" + model)
    raise ConfigError(f"--model {model!r} is not a folder here, an embedded model or a hub id "
                      "(org/name)", hint="give the model folder's path (./relative or absolute)")


def _training_data(spec: LaunchSpec, store):
    """The --data version as TrainingData without reading shards (None when not visible)."""
    from thinkforge.manifests import DatasetStore, Manifest

    from .data import TrainingData

    data = option_value(spec.train_args, "--data")
    if data.endswith(".json"):
        path = Path(data).expanduser()
        if not path.is_file():
            return None
        manifest = Manifest.load(path)
        return TrainingData(manifest, DatasetStore(path.resolve().parents[3]), path.resolve())
    if store is None:
        return None
    try:
        return TrainingData(store.resolve(data), store)
    except ForgeError:
        return None


RL_BATCH_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
                 "curriculum")


def _rl_config(spec: LaunchSpec):
    """The batch fields of the train command's GRPO/RLOO config (--config file, then flags)."""
    import yaml

    from .registry import config_model

    values: dict[str, Any] = {}
    config_file = option_value(spec.train_args, "--config")
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).expanduser().read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read --config {config_file}: {exc}") from exc
        loaded = {str(k).replace("-", "_"): v for k, v in (loaded or {}).items()}
        values.update({k: loaded[k] for k in RL_BATCH_KEYS if k in loaded})
    for key in RL_BATCH_KEYS:
        given = option_value(spec.train_args, "--" + key.replace("_", "-"))
        if given is not None:
            values[key] = given
    return config_model(spec.method).model_validate(values)


def preflight(spec: LaunchSpec, store=None) -> list[str]:
    """Everything that would otherwise fail after the allocation, checked now: batch
    alignment for the job's world size (a ConfigError in --curriculum strict), the model
    path, deepspeed for zero3.  Returns notes for the user (stderr)."""
    validate(spec)
    notes: list[str] = []
    note = node_model(option_value(spec.train_args, "--model"))[1]
    if note:
        notes.append(note)
    if spec.method in RL_METHODS:
        data = _training_data(spec, store)
        if data is None:
            notes.append("batch alignment not checked: --data is not in this store (run launch "
                         "where the store is visible)")
        else:
            from .rl import align_batches

            facts = align_batches(data, _rl_config(spec), data.store, world=spec.world_size)
            if facts.get("curriculum_batch_size"):
                notes.append(f"batches line up at world size {spec.world_size}: "
                             f"{facts['prompts_per_step']:g} prompts per optimiser step "
                             f"(gradient accumulation {facts.get('gradient_accumulation_steps')})")
    if spec.distributed == "zero3" and importlib.util.find_spec("deepspeed") is None:
        notes.append("--distributed zero3 needs deepspeed, which is not installed here: "
                     "pip install 'thinkforge[zero3]' in the nodes' environment")
    if spec.vllm_nodes:
        used = spec.vllm_tensor_parallel * spec.vllm_data_parallel
        if used < spec.gpus_per_node:
            notes.append(f"the vLLM node uses {used} of its {spec.gpus_per_node} GPUs "
                         "(--vllm-tensor-parallel x --vllm-data-parallel)")
        if spec.vllm_data_parallel > 1:
            notes.append("--vllm-data-parallel > 1 is for MoE models: vLLM refuses it for dense "
                         "ones (TRL 1.16 `trl vllm-serve` docs); use --vllm-tensor-parallel")
    return notes


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
    model = node_model(option_value(spec.train_args, "--model"))[0]
    args = replace_option(list(spec.train_args), "--data", node_data)
    args = replace_option(args, "--model", model)
    if spec.distributed == "fsdp2" and spec.activation_checkpointing \
            and _takes_gradient_checkpointing(spec.method) \
            and not _flag_given(args, "--no-gradient-checkpointing"):
        args.append("--no-gradient-checkpointing")   # FSDP checkpoints activations instead
    vllm = spec.vllm_nodes > 0
    if vllm:
        args += ["--use-vllm", "--vllm-mode", "server", "--vllm-server-host", "__VLLM_HOST__",
                 "--vllm-server-port", str(spec.vllm_port)]
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
        lines += ["# 2. the vLLM generation server on the last node; training waits until /health",
                  "#    answers (the path TRL's VLLMClient.check_server polls)",
                  f"VLLM_NODES={spec.vllm_nodes}",
                  'VLLM_HOST=${HOSTS[$TRAIN_NODES]}',
                  'VLLM_HOSTS=$(IFS=,; echo "${HOSTS[*]:$TRAIN_NODES}")',
                  ('srun --nodes="$VLLM_NODES" --ntasks-per-node=1 --nodelist="$VLLM_HOSTS" '
                   '--kill-on-bad-exit=1 \\'),
                  (f'    trl vllm-serve --model {q(model)} '
                   f'--tensor-parallel-size {spec.vllm_tensor_parallel} '
                   f'--data-parallel-size {spec.vllm_data_parallel} '
                   f'--host 0.0.0.0 --port {spec.vllm_port} &'),
                  "VLLM_PID=$!",
                  "for _ in $(seq 1 360); do",
                  f'    if curl -sf "http://$VLLM_HOST:{spec.vllm_port}/health" >/dev/null; then break; fi',
                  '    if ! kill -0 "$VLLM_PID" 2>/dev/null; then echo "vLLM server exited" >&2; exit 1; fi',
                  "    sleep 5",
                  "done",
                  (f'curl -sf "http://$VLLM_HOST:{spec.vllm_port}/health" >/dev/null || '
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
    """Check what can be checked before an allocation (``preflight``), then return the texts
    of ``accelerate.yaml`` and ``launch.sbatch`` for ``out_dir`` and the notes."""
    import yaml

    notes = preflight(spec, store)
    out_dir = Path(out_dir)
    config_path = out_dir.resolve() / "accelerate.yaml"
    spec.out_dir = str(out_dir.resolve())
    config_text = yaml.safe_dump(accelerate_config(spec), sort_keys=True)
    script = sbatch_script(spec, str(config_path), store)
    return {"accelerate_config": config_text, "sbatch": script, "notes": notes,
            "paths": {"accelerate_config": str(config_path),
                      "sbatch": str(out_dir.resolve() / "launch.sbatch")}}
