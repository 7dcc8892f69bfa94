"""The training commands: `train METHOD`, `runs`, `launch`.

`thinkforge train sft|grpo|dpo|reward|rloo` are derived from the `train.*` step descriptors
(``trainers/steps.py``) by ``thinkforge.step_cmds``, exactly as the filters are: one
``--field-name`` per field of the method's pydantic config (``trainers/<method>_config.py``)
plus ``--model`` / ``--output``, ``--data REF|manifest.json``, ``--config YAML`` (flags
win), ``--trl KEY=VALUE`` (any other TRL config field), ``--reuse``, ``--dry-run`` and
``--json``.  ``StepGroup`` lists them from the registry when asked (no torch or TRL is
imported to build the CLI).  `train distill` is added by ``distill_cmds``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .context import get_store
from .output import log, print_json, print_table
from .step_cmds import StepGroup


@click.group("train", cls=StepGroup)
def train_group():
    """Train a model on a dataset version (verified first) and publish a run record.

    Each METHOD's options are the fields of its config (the recipe step `train.METHOD`
    takes the same keys); `thinkforge train METHOD --help` lists them.

    \b
    Example:
      thinkforge train sft --data demo-sft-train --model smollm2-135m --output out/sft --max-steps 20
      thinkforge train grpo --data demo-rl --model out/sft --output out/grpo --dry-run
      thinkforge runs
    """


@click.command("runs")
@click.option("--data", "data_ref", help="Only runs trained on this version (ref or fingerprint).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def runs_cmd(ctx, data_ref, as_json):
    """List training run records (SQL: the `runs` table of `thinkforge sql`).

    \b
    Example:
      thinkforge runs
      thinkforge runs --data demo-sft-train --json
      thinkforge sql "SELECT r.run_id, v.ref, r.weights_sha256 FROM runs r
          JOIN versions v ON v.fingerprint = r.data_fingerprint"
    """
    from thinkforge.manifests.training_runs import TrainingRuns

    store = get_store(ctx)
    records = list(TrainingRuns(store))
    if data_ref:
        fingerprint = data_ref if all(c in "0123456789abcdef" for c in data_ref) and \
            len(data_ref) >= 8 else store.resolve(data_ref).fingerprint
        records = [r for r in records if any(f.startswith(fingerprint) for f in r.data_fingerprints)]
    if as_json:
        print_json([r.model_dump() for r in records])
        return
    print_table([{"run": r.run_id, "method": r.method, "data": ", ".join(d.ref for d in r.data),
                  "fingerprint": r.data[0].fingerprint[:12] if r.data else "",
                  "model": r.base_model, "world": r.world_size,
                  "steps": r.final_metrics.get("global_step"),
                  "loss": _last_loss(r), "weights": r.weights_sha256[:12],
                  "created": r.created_at[:16].replace("T", " ")} for r in records],
                title=f"training runs in {store.root}")


def _last_loss(record) -> str:
    loss = next((m["loss"] for m in reversed(record.metrics) if "loss" in m), None)
    return "" if loss is None else f"{float(loss):.4g}"


def show_run(store, run_id: str, as_json: bool) -> None:
    """`thinkforge show RUN`: one run record (called by `show` when REF names a run)."""
    from thinkforge.manifests.training_runs import TrainingRuns

    record = TrainingRuns(store).get(run_id)
    if as_json:
        print_json(record.model_dump())
        return
    print_table([{"run": record.run_id, "method": record.method, "status": record.status,
                  "model": record.base_model, "world": record.world_size,
                  "wall_s": record.wall_time_s, "created_at": record.created_at}])
    for d in record.data:
        click.echo(f"data ({d.role}): {d.ref} fingerprint {d.fingerprint} rows {d.rows}"
                   + (f" manifest {d.manifest_path}" if d.manifest_path else ""))
    if record.base_model_sha256:
        click.echo(f"base model sha256: {record.base_model_sha256} ({record.base_model_path})")
    click.echo(f"output: {record.output_dir}")
    click.echo(f"weights sha256: {record.weights_sha256}")
    for f in record.weights:
        click.echo(f"  {f.path}  bytes={f.bytes}  sha256={f.sha256[:16]}")
    click.echo("libraries: " + ", ".join(f"{k} {v}" for k, v in record.libraries.items()))
    click.echo("config: " + json.dumps(record.config, default=str))
    losses = [(m.get("step"), m["loss"]) for m in record.metrics if "loss" in m]
    if losses:
        click.echo("loss by step: " + ", ".join(f"{s}:{float(v):.4g}" for s, v in losses))
    for key, value in record.final_metrics.items():
        click.echo(f"{key}: {value}")
    if record.method == "distill":
        from .distill_show import show_distill

        show_distill(record)


@click.command("launch", context_settings={"ignore_unknown_options": True})
@click.option("--nodes", type=int, required=True, help="Nodes in the job (training + vLLM).")
@click.option("--gpus-per-node", type=int, default=8, show_default=True, help="GPUs per node.")
@click.option("--vllm-nodes", type=int, default=0, show_default=True,
              help="GRPO/RLOO: the last N nodes run `trl vllm-serve` for generation.")
@click.option("--vllm-tensor-parallel", type=int, default=1, show_default=True,
              help="GPUs the vLLM server shards the model over (`trl vllm-serve --tensor-parallel-size`).")
@click.option("--vllm-data-parallel", type=int, default=1, show_default=True,
              help="vLLM data-parallel replicas on the vLLM node (MoE models; vLLM refuses it for dense ones).")
@click.option("--activation-checkpointing/--no-activation-checkpointing", default=True,
              show_default=True, help="FSDP2 activation checkpointing (the train command then runs "
              "with --no-gradient-checkpointing; off: TRL's gradient checkpointing, on by default).")
@click.option("--partition", help="SLURM partition.")
@click.option("--account", help="SLURM account.")
@click.option("--time", "time_limit", help="SLURM time limit, e.g. 04:00:00.")
@click.option("--job-name", help="SLURM job name [default: thinkforge-METHOD].")
@click.option("--distributed", type=click.Choice(["fsdp2", "zero3"]), default="fsdp2",
              show_default=True, help="FSDP2 or DeepSpeed ZeRO-3 (TRL's accelerate configs, bf16).")
@click.option("--local-dir", default="/tmp/thinkforge-$SLURM_JOB_ID", show_default=True,
              help="Node-local directory the data is pulled into.")
@click.option("--setup", multiple=True, help="A shell line run first (e.g. 'module load cuda').")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("launch"),
              show_default=True, help="Directory for launch.sbatch and accelerate.yaml.")
@click.option("--dry-run", is_flag=True, help="Print both files; write and submit nothing.")
@click.option("--submit/--no-submit", default=True, show_default=True,
              help="Run sbatch on the written script (when sbatch is on PATH).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def launch_cmd(ctx, nodes, gpus_per_node, vllm_nodes, vllm_tensor_parallel, vllm_data_parallel,
               activation_checkpointing, partition, account, time_limit, job_name,
               distributed, local_dir, setup, out_dir, dry_run, submit, command):
    """Run `thinkforge train ...` on a SLURM cluster (sbatch + accelerate config).

    Everything after `--` is the training command, as you would run it on one machine.
    Each node pulls the data to local disk (verifying every shard), a vLLM node serves
    generation for GRPO/RLOO, the rest train with one `accelerate launch` per node.
    Batch alignment for the job's world size, the vLLM layout and the model path are
    checked here, before any allocation (docs/training.md, "Cluster launch").

    \b
    Example:
      thinkforge launch --nodes 4 --gpus-per-node 8 --vllm-nodes 1 --partition h100 \\
          --time 04:00:00 --dry-run -- train grpo --data demo-rl --model out/sft --output out/grpo
    """
    import shutil
    import subprocess

    from thinkforge.trainers.launch import LaunchSpec, write_launch

    store = get_store(ctx)
    spec = LaunchSpec(train_args=list(command), nodes=nodes, gpus_per_node=gpus_per_node,
                      vllm_nodes=vllm_nodes, partition=partition, account=account,
                      time=time_limit, job_name=job_name, distributed=distributed,
                      store=str(store.root), local_dir=local_dir, setup=list(setup),
                      vllm_tensor_parallel=vllm_tensor_parallel,
                      vllm_data_parallel=vllm_data_parallel,
                      activation_checkpointing=activation_checkpointing)
    # checked before anything is written or submitted: batch alignment, vLLM layout, model path
    written = write_launch(spec, out_dir, store if store.datasets_dir.is_dir() else None)
    for note in written["notes"]:
        log(f"note: {note}")
    if dry_run:
        click.echo(f"# ---- {written['paths']['accelerate_config']}")
        click.echo(written["accelerate_config"], nl=False)
        click.echo(f"# ---- {written['paths']['sbatch']}")
        click.echo(written["sbatch"], nl=False)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    Path(written["paths"]["accelerate_config"]).write_text(written["accelerate_config"])
    script = Path(written["paths"]["sbatch"])
    script.write_text(written["sbatch"])
    script.chmod(0o755)
    click.echo(str(script))
    if submit and shutil.which("sbatch"):
        result = subprocess.run(["sbatch", str(script)], capture_output=True, text=True, check=False)
        click.echo(result.stdout.strip() or result.stderr.strip(),
                   err=result.returncode != 0)
        if result.returncode:
            raise SystemExit(result.returncode)
    elif submit and not ctx.obj["quiet"]:
        log(f"sbatch is not on PATH here; submit with: sbatch {script}")


def _register_generate_preferences() -> None:
    """`thinkforge generate preferences` (lives here with the RLHF trainers it feeds)."""
    from thinkforge.generators.preferences import PreferenceConfig

    from .executor_options import executor_options
    from .generate_cmds import _run, _sampling, backend_options, build_config, derived_options, generate_group

    @generate_group.command("preferences")
    @executor_options
    @backend_options
    @derived_options(PreferenceConfig)
    @click.option("--policy", help="The policy that samples the K answers (same as --model).")
    @click.option("--temperature", type=float, help="Sampling temperature [default: 0.6].")
    @click.option("--top-p", type=float, help="Top-p [default: 0.95].")
    @click.pass_context
    def preferences_cmd(ctx, policy, temperature, top_p, **flags):
        """K samples per prompt from a policy, best vs worst by score -> a preferences version.

        --scorer verifier (default) or reward-model:PATH (a model saved by `thinkforge train
        reward`). Ties (every sample scored the same, or best and worst are the same text)
        and prompts with fewer than two scored samples go to rejected/ with a reason.

        \b
        Example:
          thinkforge generate preferences --prompts gsm8k --policy out/sft --k 4 --name gsm8k-prefs
          thinkforge generate preferences --prompts gsm8k --policy out/sft --k 4 \\
              --scorer reward-model:out/rm --name gsm8k-prefs-rm
        """
        from thinkforge.generators.preferences import generate_preferences

        if policy:
            if flags.get("model") and flags["model"] != policy:
                raise click.UsageError("give the policy once: --policy or --model")
            flags["model"] = policy
        step_fields = {"sampling": _sampling(temperature, top_p, flags["max_new_tokens"])}
        config = build_config(PreferenceConfig, flags, step_fields)
        _run(ctx, flags, config, generate_preferences, len(config.modes) * config.k)


_register_generate_preferences()


COMMANDS = (train_group, runs_cmd, launch_cmd)
