"""``thinkforge train distill``: verified data version in, distilled child + run record out.

``--data`` goes through ``thinkforge.trainers.data.open_data`` (a store reference or a pulled
``manifest.json``; every shard's sha256 checked before any model loads), its rows become
text (``texts.row_texts``), ``pipeline.run_distill`` does the work and
``thinkforge.trainers.records.record_run`` publishes the run record, whose ``extra.distill_report`` is
the whole ``distill_report.json`` and whose ``final_metrics`` hold the headline numbers.
Distillation publishes no dataset version, so it has no step descriptor (see
manifests/steps.py); it is reusable like the TRL trainers (``--reuse``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .config import DistillConfig

KINDS = ("sft", "prompts", "rl_pool", "preferences", "rollouts")


def resolved(cfg: DistillConfig, model: str) -> dict:
    return {"model": model, **cfg.model_dump(mode="json")}


def headline(report: dict) -> dict:
    """The numbers `thinkforge runs` / `show` print for a distillation."""
    m = report["models"]
    out = {}
    for name in ("parent", "child_before_kd", "child_after_kd"):
        out[f"{name}_params"] = m[name]["params"]
        out[f"{name}_kv_bytes_per_token"] = m[name]["kv_bytes_per_token"]
        out[f"{name}_cpu_tokens_per_s"] = m[name]["cpu_tokens_per_s"]
        out[f"{name}_kl"] = m[name]["kl_to_parent"]
    out["uniform_baseline_kl_before_kd"] = report["uniform_baseline"]["kl_to_parent_before_kd"]
    if "kl_to_parent_after_kd" in report["uniform_baseline"]:
        out["uniform_baseline_kl_after_kd"] = report["uniform_baseline"]["kl_to_parent_after_kd"]
    if report.get("fusion"):
        out["fusion_kl_cost"] = report["fusion"]["kl_cost"]
    out["chosen"] = " ".join(layer["variant"] for layer in report["layers"])
    return out


def train_distill(store, data: str, model: str, output: str | Path, cfg: DistillConfig, *,
                  log: Callable[[str], None] = lambda _: None, reuse: bool = False):
    from thinkforge.manifests.training_runs import TrainingRuns, config_hash
    from thinkforge.trainers.base import resolve_model_path
    from thinkforge.trainers.data import open_data, read_rows
    from thinkforge.trainers.records import record_run

    from .pipeline import REPORT_NAME, run_distill

    started = time.monotonic()
    training = open_data(store, data, KINDS)        # IntegrityError before any model loads
    config = resolved(cfg, model)
    if reuse:
        found = TrainingRuns(store).find_reusable("distill", config_hash(config),
                                                  [training.manifest.fingerprint])
        if found is not None:
            log(f"reusing run {found.run_id} ({found.output_dir})")
            return found
    rows = read_rows(training)
    model_path = resolve_model_path(model)
    log(f"distill: {len(rows)} rows of {training.ref} "
        f"(fingerprint {training.manifest.fingerprint[:12]}), parent {model}")
    output = Path(output).expanduser().resolve()
    report = run_distill(model_path, None, output, cfg, rows=rows,
                         data_fingerprint=training.manifest.fingerprint,
                         cache_root=Path(training.store.root) / "cache" / "distill", log=log)
    metrics = [{"step": h["step"], "loss": h["kd_loss"]} for h in report["kd"]["history"]]
    record = record_run(store, method="distill", data=[training.run_data()], base_model=model,
                        config=config, output_dir=output, metrics=metrics,
                        wall_time_s=time.monotonic() - started, world_size=1,
                        final_metrics=headline(report),
                        extra={"distill_report": report, "report_file": str(output / REPORT_NAME)})
    log(f"distill: run {record.run_id}, child in {output}")
    return record
