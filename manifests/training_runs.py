"""Training run records: what was trained on which exact bytes, and which weights came out.

A run record is to weights what a manifest is to data (docs/concepts.md, "Tamper evidence and
runs").  Records live in a directory of their own, apart from the generation checkpoints
under ``runs/``::

    <store>/training-runs/<run-id>/run.json

and in the catalog's ``runs`` table (one row per record, rebuilt from the files like every
other catalog table), so ``thinkforge sql`` can join runs to ``versions`` and ``lineage``:
lineage reaches from raw prompts to weights.

A record is written once, by one atomic rename of a staging directory (like a version),
and never changed.  It holds the data it trained on (ref, fingerprint, kind, rows; the
manifest path when the data came from a pulled manifest), the base model (and
``base_model_sha256``, the content key of its files: reuse is keyed by it), the fully
resolved config and its hash, library versions, world size, metrics per logging step,
wall time, the output folder and the sha256 of every saved weights file (plus one digest
over all of them).  ``find_reusable`` is the reuse rule of recipe steps: a finished run of
the same method, config hash and data fingerprints whose weights are still on disk.

Other packages publish runs through ``publish_run`` (see thinkforge.trainers.records for the helper
that fills in versions, weights and host facts).  This module imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import (
    ConfigError,
    ConflictError,
    InputDataError,
    IntegrityError,
    NotFoundError,
)
from .records import RUN_ID_RE, RUNS_DIRNAME, created_by, run_ids, sha256_file, utc_now

RUN_RECORD_VERSION = 1
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


class RunData(BaseModel):
    """One dataset version a run trained on (a run may use several: distillation, mixes)."""

    model_config = ConfigDict(extra="forbid")
    ref: str
    name: str
    version: str
    kind: str
    fingerprint: str
    rows: int
    role: str = Field("train", description="what the run used it for: train, eval, calibration...")
    manifest_path: str | None = Field(None, description="set when --data was a pulled manifest")


class WeightFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="relative to output_dir")
    bytes: int
    sha256: str


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_version: int = RUN_RECORD_VERSION
    run_id: str
    method: str = Field(description="sft, grpo, dpo, reward, rloo, distill, ...")
    status: str = Field("finished", description="finished | failed")
    data: list[RunData]
    base_model: str
    base_model_sha256: str | None = Field(None, description="content key of the base model's "
                                          "weights, config and tokenizer files (reuse is keyed by it)")
    base_model_path: str | None = Field(None, description="the absolute folder that was hashed")
    config: dict[str, Any] = Field(default_factory=dict, description="fully resolved config")
    config_hash: str = ""
    libraries: dict[str, str | None] = Field(default_factory=dict, description="trl, torch, ...")
    world_size: int = 1
    metrics: list[dict[str, Any]] = Field(default_factory=list, description="per logging step")
    final_metrics: dict[str, Any] = Field(default_factory=dict)
    wall_time_s: float = 0.0
    output_dir: str
    weights: list[WeightFile] = Field(default_factory=list)
    weights_sha256: str = Field("", description="sha256 over the sorted (path, sha256) list")
    created_at: str = Field(default_factory=utc_now)
    created_by: dict[str, Any] = Field(default_factory=created_by)
    extra: dict[str, Any] = Field(default_factory=dict, description="method-specific facts")

    @property
    def data_fingerprints(self) -> list[str]:
        return [d.fingerprint for d in self.data]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, default=str) + "\n"


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def new_run_id(method: str, data_name: str | None = None) -> str:
    """``run-<method>-<data>-<UTC time>-<random>``: sortable by time, unique, a valid path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
    data = re.sub(r"[^a-z0-9_.-]", "-", (data_name or "").lower())[:40]
    parts = ["run", re.sub(r"[^a-z0-9_.-]", "-", method.lower())] + ([data] if data else [])
    return "-".join([*parts, stamp, uuid.uuid4().hex[:6]])


def validate_run_id(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id or "") or len(run_id) > 160:
        raise ConfigError(f"invalid run id {run_id!r}: run ids match run-[a-z0-9][a-z0-9_.-]*",
                          hint="see `thinkforge runs` for the ids in this store")
    return run_id


def hash_weights(output_dir: str | os.PathLike) -> tuple[list[WeightFile], str]:
    """sha256 of every weights file under ``output_dir`` and one digest over all of them."""
    root = Path(output_dir)
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES
                       and "checkpoint-" not in str(p.relative_to(root))):
        files.append(WeightFile(path=str(path.relative_to(root)), bytes=path.stat().st_size,
                                sha256=sha256_file(path)))
    if not files:
        raise InputDataError(f"no weights files ({', '.join(WEIGHT_SUFFIXES)}) in {root}",
                             hint="the trainer did not save a model; check its log")
    digest = hashlib.sha256("\n".join(f"{f.path} {f.sha256}" for f in files).encode()).hexdigest()
    return files, digest


class TrainingRuns:
    """The run records of one store."""

    def __init__(self, store):
        self.store = store  # a DatasetStore (not imported: the store imports the catalog, which reads runs)

    @property
    def root(self) -> Path:
        return self.store.root / RUNS_DIRNAME

    def path(self, run_id: str) -> Path:
        return self.root / validate_run_id(run_id) / "run.json"

    def ids(self) -> list[str]:
        return run_ids(self.store.root)

    def __iter__(self) -> Iterator[RunRecord]:
        for run_id in self.ids():
            yield self.get(run_id)

    def exists(self, run_id: str) -> bool:
        return bool(RUN_ID_RE.match(run_id or "")) and (self.root / run_id / "run.json").is_file()

    def get(self, run_id: str) -> RunRecord:
        path = self.path(run_id)
        if not path.is_file():
            known = self.ids()
            raise NotFoundError(f"no training run {run_id!r} in store {self.store.root}",
                                hint=f"runs: {', '.join(known[-5:])}" if known else
                                "train one: thinkforge train sft --data REF --model M --output DIR")
        try:
            return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputDataError(f"cannot read run record {path}: {exc}") from exc

    def publish(self, record: RunRecord) -> Path:
        """Write the record atomically (staging dir + rename); refresh the catalog."""
        validate_run_id(record.run_id)
        if not record.config_hash:
            record.config_hash = config_hash(record.config)
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / record.run_id
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            (staging / "run.json").write_text(record.to_json(), encoding="utf-8")
            try:
                os.rename(staging, final)
            except OSError as exc:
                raise ConflictError(f"run {record.run_id} already exists in {self.root}",
                                    hint="run ids are unique; records are never overwritten") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.store.after_publish()
        return final / "run.json"

    def for_data(self, fingerprint: str) -> list[RunRecord]:
        """Runs that trained on the version with this fingerprint (the report lists them)."""
        return [r for r in self if fingerprint in r.data_fingerprints]

    def find_reusable(self, method: str, config_hash_: str, fingerprints: list[str],
                      output_dir: str | Path | None = None) -> RunRecord | None:
        """A finished run of ``method`` with the same config hash on the same data whose
        weights are all still on disk with their recorded sha256 sizes (and, given
        ``output_dir``, in that folder: a later step may load the model from there)."""
        wanted = str(Path(output_dir).expanduser().resolve()) if output_dir is not None else None
        for record in reversed(list(self)):
            if (record.method == method and record.status == "finished"
                    and record.config_hash == config_hash_
                    and sorted(record.data_fingerprints) == sorted(fingerprints)
                    and (wanted is None or record.output_dir == wanted)
                    and weights_present(record)):
                return record
        return None

    def verify_weights(self, record: RunRecord) -> None:
        """Full check: every weights file still has the sha256 the record holds."""
        base = Path(record.output_dir)
        for f in record.weights:
            path = base / f.path
            if not path.is_file():
                raise IntegrityError(f"{record.run_id}: weights file {path} is missing")
            digest = sha256_file(path)
            if digest != f.sha256:
                raise IntegrityError(f"{record.run_id}: sha256 of {path} is {digest[:16]}..., "
                                     f"the run record says {f.sha256[:16]}...",
                                     hint="the weights were changed after training")


def weights_present(record: RunRecord) -> bool:
    base = Path(record.output_dir)
    return bool(record.weights) and all(
        (base / f.path).is_file() and (base / f.path).stat().st_size == f.bytes
        for f in record.weights)


def run_rows(store) -> list[dict[str, Any]]:
    """One flat row per run for the catalog's ``runs`` table (first data version inline)."""
    rows = []
    for r in TrainingRuns(store):
        first = r.data[0] if r.data else None
        last_loss = next((float(m["loss"]) for m in reversed(r.metrics) if "loss" in m), None)
        rows.append({
            "run_id": r.run_id, "method": r.method, "status": r.status,
            "data_ref": first.ref if first else None, "data_name": first.name if first else None,
            "data_version": first.version if first else None,
            "data_fingerprint": first.fingerprint if first else None,
            "data_refs": [d.ref for d in r.data], "base_model": r.base_model,
            "output_dir": r.output_dir, "weights_sha256": r.weights_sha256,
            "world_size": r.world_size, "steps": r.final_metrics.get("global_step"),
            "final_loss": last_loss, "wall_time_s": r.wall_time_s, "created_at": r.created_at,
            "trl_version": r.libraries.get("trl"), "torch_version": r.libraries.get("torch"),
            "config_hash": r.config_hash, "config": json.dumps(r.config, default=str),
            "metrics": json.dumps(r.metrics, default=str), "base_model_sha256": r.base_model_sha256,
        })
    return rows
