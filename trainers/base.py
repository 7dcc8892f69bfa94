"""What every TRL trainer shares: the common config, TRL argument building, the run flow.

The flow of ``run_trainer`` is the same for each method (docs/training.md)::

    open + verify the data (sha256 of every shard; before any model is loaded)
    -> rows in TRL's layout, in memory     (method.rows)
    -> the TRL trainer                      (method.build)
    -> train, save a model folder transformers loads back (weights + tokenizer)
    -> publish a run record (rank 0)        (thinkforge.trainers.records)

A method is a small module pair, ``<method>_config.py`` (a pydantic config whose fields
carry help text: the CLI options and the recipe step config derive from it) and
``<method>.py`` (a ``Method``: which kinds it takes, how rows are built, which TRL trainer).
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import ConfigError, require
from thinkforge.manifests.training_runs import RunRecord, TrainingRuns, config_hash

from .data import TrainingData, open_data
from .model_key import ModelKey, model_key, resolve_model_path


class TrainCommon(BaseModel):
    """Options every trainer takes; TRL options without a field here go in ``trl``."""

    model_config = ConfigDict(extra="forbid")
    max_steps: int = Field(-1, description="optimiser steps to take (-1: num_train_epochs)")
    num_train_epochs: float = Field(1.0, gt=0, description="epochs when max_steps is -1")
    learning_rate: float = Field(1e-5, gt=0, description="peak learning rate")
    per_device_train_batch_size: int = Field(2, ge=1, description="rows per device per micro-step")
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-steps per optimiser step")
    logging_steps: int = Field(1, ge=1, description="log metrics every N steps (into the run record)")
    seed: int = Field(0, description="random seed (data order, init, sampling)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where to train: auto = CUDA when torch sees a GPU, else the CPU")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="weights dtype at load: auto = bfloat16 on CUDA, float32 on CPU")
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = Field(
        "sdpa", description="attention kernel (flash_attention_2: CUDA, bf16, flash-attn)")
    bf16: bool | None = Field(None, description="bf16 mixed precision (default: on when the "
                              "resolved dtype is bfloat16)")
    gradient_checkpointing: bool | None = Field(
        None, description="trade compute for activation memory (default: TRL's, on; "
        "--no-gradient-checkpointing turns it off, as `launch` does under FSDP activation "
        "checkpointing)")
    trl: dict[str, Any] = Field(default_factory=dict, description="any other field of the TRL "
                                "config, e.g. warmup_ratio=0.1 (YAML: {warmup_ratio: 0.1}); "
                                "checked against TRL's fields")

    @field_validator("trl", mode="before")
    @classmethod
    def _none_is_empty(cls, value):
        """None is {}; ``warmup-ratio`` is TRL's ``warmup_ratio`` (the CLI's spelling)."""
        if isinstance(value, dict):
            return {str(k).replace("-", "_"): v for k, v in value.items()}
        return value or {}


@dataclass
class Method:
    """One training method: its data kinds, its rows, its TRL config class and trainer."""

    name: str
    kinds: tuple[str, ...]
    config_model: type[TrainCommon]
    trl_config: Callable[[], type]                  # lazily: trl.SFTConfig ...
    rows: Callable[[TrainingData, Any, DatasetStore], list[dict]]
    build: Callable[..., Any]                       # (model_path, dataset, args, config, data, ctx)
    trl_fields: Callable[[Any], dict[str, Any]] = lambda config: {}
    describe: str = ""
    checks: list[Callable] = field(default_factory=list)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def placement(config: TrainCommon):
    """The resolved ``--device/--dtype/--attn-implementation`` (a ConfigError when they cannot
    run here, before any model loads)."""
    from thinkforge.generators.backends.placement import resolve

    return resolve(config.device, config.dtype, config.attn_implementation)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def trl_args(method: Method, config: TrainCommon, output_dir: Path):
    """The TRL config for a run: our fields, then the method's, then ``config.trl`` overrides
    (an unknown key is an error naming the closest TRL field)."""
    import dataclasses

    cls = method.trl_config()
    known = {f.name for f in dataclasses.fields(cls)}
    for key in config.trl:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            raise ConfigError(f"{cls.__name__} has no option {key!r}"
                              + (f"; did you mean {near[0]!r}?" if near else ""),
                              hint="see the TRL docs of " + cls.__name__)
    where = placement(config)
    cuda = where.on_cuda
    values: dict[str, Any] = {
        "output_dir": str(output_dir), "max_steps": config.max_steps,
        "num_train_epochs": config.num_train_epochs, "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "logging_steps": config.logging_steps, "seed": config.seed, "data_seed": config.seed,
        "bf16": where.dtype == "bfloat16" if config.bf16 is None else config.bf16,
        "save_strategy": "no", "report_to": "none", "use_cpu": not cuda,
        "dataloader_num_workers": 0, "disable_tqdm": True,
        # the policy, its reference and a --reward-model all load with these (TRL's default
        # dtype would be float32 even on a GPU)
        "model_init_kwargs": {"dtype": where.dtype,
                              "attn_implementation": where.attn_implementation},
    }
    if config.gradient_checkpointing is not None:  # None: TRL's default (on)
        values["gradient_checkpointing"] = config.gradient_checkpointing
    values.update(method.trl_fields(config))
    values.update(config.trl)
    return cls(**values)


def resolved_config(method: Method, config: TrainCommon, model: str,
                    key: ModelKey | None | bool = True) -> dict[str, Any]:
    """What goes into the run record and the reuse hash (the world size is part of it:
    batch alignment and results depend on it).  ``base_model_sha256`` is the content key
    of the weights the run starts from (``model_key``; None when the model is not here)."""
    if key is True:
        key = model_key(model)
    return {"method": method.name, "model": model,
            "base_model_sha256": key.sha256 if key else None, "world_size": world_size(),
            **config.model_dump(mode="json")}


def run_key(resolved: dict[str, Any]) -> str:
    """The reuse hash: the resolved config with the ``--model`` string left out when the
    weights' content key is known (the same weights under another path are the same start;
    other weights under the same path are not)."""
    keyed = dict(resolved)
    if keyed.get("base_model_sha256"):
        keyed.pop("model", None)
    return config_hash(keyed)


def run_trainer(method: Method, store: DatasetStore, data: str, model: str, output: str | Path,
                config: TrainCommon, *, log: Callable[[str], None] = lambda _: None,
                reuse: bool = False, session: dict | None = None) -> RunRecord | None:
    """Verify, convert, train, save, record.  Returns the run record (None on ranks > 0).

    ``reuse``: a finished run of the same method, config and data fingerprint whose weights
    are still on disk is returned instead of training again (recipe steps).  ``session``:
    a dict that receives the TRL trainer (tests compare its model with the saved folder)."""
    started = time.monotonic()
    training = open_data(store, data, method.kinds)            # IntegrityError before any model
    key = model_key(model)
    resolved = resolved_config(method, config, model, key)
    if reuse:
        found = TrainingRuns(store).find_reusable(method.name, run_key(resolved),
                                                  [training.manifest.fingerprint], output)
        if found is not None:
            log(f"reusing run {found.run_id} ({found.output_dir})")
            return found
    for check in method.checks:
        check(training, config, store)
    require("trl", "train")
    _quiet_progress_bars()  # the "step N: ..." log lines are the progress; stderr stays readable
    rows = method.rows(training, config, store)
    dataset = require("datasets", "train").Dataset.from_list(rows)
    output = Path(output).expanduser().resolve()
    args = trl_args(method, config, output)
    model_path = resolve_model_path(model)
    log(f"{method.name}: {len(rows)} rows of {training.ref} "
        f"(fingerprint {training.manifest.fingerprint[:12]}), model {model}")
    ctx: dict[str, Any] = {"store": store, "extra": {"placement": placement(config).as_dict()}}
    trainer = method.build(model_path, dataset, args, config, training, ctx)
    _logs_to_stderr(trainer, log)
    if session is not None:
        session["trainer"] = trainer
    result = trainer.train()
    trainer.save_model(str(output))
    is_main = trainer.accelerator.is_main_process
    if is_main and getattr(trainer, "processing_class", None) is not None:
        trainer.processing_class.save_pretrained(str(output))
    trainer.accelerator.wait_for_everyone()
    if not is_main:
        return None
    from .records import record_run

    history = [dict(h) for h in trainer.state.log_history]
    final = {"global_step": trainer.state.global_step, **(result.metrics or {})}
    record = record_run(store, method=method.name, data=[training.run_data()], base_model=model,
                        config=resolved, config_hash=run_key(resolved), base_model_key=key,
                        output_dir=output, metrics=history,
                        wall_time_s=time.monotonic() - started,
                        world_size=trainer.accelerator.num_processes, final_metrics=final,
                        extra={"trl_config": _trl_summary(args), **ctx["extra"]})
    log(f"{method.name}: {trainer.state.global_step} steps, run {record.run_id}, "
        f"weights {record.weights_sha256[:12]} in {output}")
    return record


def _quiet_progress_bars() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _logs_to_stderr(trainer, log: Callable[[str], None]) -> None:
    """TRL prints each log dict on stdout when tqdm is off; stdout is data here, so the
    lines go through ``log`` (stderr, silent with --quiet) instead."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)

    class LogToStderr(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                shown = {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in logs.items()
                         if k in ("loss", "reward", "grad_norm", "learning_rate", "train_runtime")}
                log(f"step {state.global_step}: {shown}")

    trainer.add_callback(LogToStderr())


def _trl_summary(args) -> dict[str, Any]:
    """The TRL config as JSON-friendly values (the run record keeps what TRL actually used)."""
    out = {}
    for key, value in args.to_dict().items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool))
                                                     for v in value):
            out[key] = list(value)
    return out
