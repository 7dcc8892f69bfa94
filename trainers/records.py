"""Publishing a training run record (``thinkforge.manifests.training_runs``) from any trainer.

``record_run`` fills in what every record needs and callers should not assemble by hand:
library versions, the sha256 of the saved weights, host facts; then publishes it into the
store.  Distillation and the TRL trainers use it alike::

    from thinkforge.trainers.records import record_run
    record = record_run(store, method="distill", data=[training_data.run_data()],
                        base_model="smollm2-135m", config=cfg.model_dump(mode="json"),
                        output_dir=out, metrics=history, wall_time_s=seconds, world_size=1)
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from thinkforge.manifests import DatasetStore
from thinkforge.manifests.training_runs import (
    RunData,
    RunRecord,
    TrainingRuns,
    hash_weights,
    new_run_id,
)
from thinkforge.manifests.training_runs import config_hash as hash_config

from .model_key import ModelKey, model_key

LIBRARIES = ("trl", "transformers", "torch", "accelerate", "datasets", "peft", "deepspeed",
             "vllm", "math-verify")


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    from thinkforge.manifests import __version__

    out["thinkforge"] = __version__
    return out


def record_run(store: DatasetStore, *, method: str, data: list[RunData], base_model: str,
               config: dict[str, Any], output_dir: str | Path, metrics: list[dict[str, Any]],
               wall_time_s: float, world_size: int = 1, final_metrics: dict | None = None,
               extra: dict | None = None, run_id: str | None = None,
               status: str = "finished", config_hash: str | None = None,
               base_model_key: ModelKey | None | bool = True) -> RunRecord:
    """Hash the weights in ``output_dir`` and publish a run record; return it.

    ``config_hash``: the reuse key (default: the hash of ``config``).  ``base_model_key``:
    the content key of the base model (``model_key``; by default computed from
    ``base_model`` when it is a folder here, cached, so cheap)."""
    output_dir = Path(output_dir).resolve()
    weights, digest = hash_weights(output_dir)
    if base_model_key is True:
        base_model_key = model_key(base_model)
    record = RunRecord(
        run_id=run_id or new_run_id(method, data[0].name if data else None), method=method,
        status=status, data=data, base_model=base_model,
        base_model_sha256=base_model_key.sha256 if base_model_key else None,
        base_model_path=base_model_key.path if base_model_key else None, config=config,
        config_hash=config_hash or hash_config(config), libraries=library_versions(), world_size=world_size,
        metrics=metrics, final_metrics=final_metrics or {}, wall_time_s=round(wall_time_s, 3),
        output_dir=str(output_dir), weights=weights, weights_sha256=digest, extra=extra or {})
    TrainingRuns(store).publish(record)
    return record
