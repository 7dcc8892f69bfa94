"""How a step runs: one typed ``RunSettings`` (docs/architecture.md, "Run settings").

None of these settings changes what a step produces (the config does), so they are never
recorded in a version's step or keyed into reuse.  The same model is a recipe's
``resources:``, ``RunContext.settings`` and, field by field, the CLI's run options
(derived from it like a step config's), so the key lists exist once: here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError
from .executor import ExecutorSpec


class DuckdbSettings(BaseModel):
    """How much DuckDB may use in a filter, mix or split, and whether it shows progress."""

    model_config = ConfigDict(extra="forbid")
    memory_limit: str | None = Field(
        None, description="DuckDB memory_limit, e.g. '2GiB'; beyond it DuckDB spills to disk "
                          "(default: DuckDB's own, 80% of RAM)")
    temp_directory: Path | None = Field(
        None, description="where DuckDB spills (default: a fresh directory under "
                          "<store>/.staging, removed afterwards)", json_schema_extra={"cli_aliases": ["--temp-dir"]})
    threads: int | None = Field(None, ge=1, description="DuckDB threads (default: all cores)")
    progress: bool | None = Field(None, description="show each phase's progress and ETA on stderr "
                                                    "(default: yes, unless the run is quiet)")
    materialize: bool = Field(
        False, description="write the kept rows as a full copy instead of a selection over the "
                           "input's shards (same rows, same fingerprint; THINKFORGE_MATERIALIZE=1 "
                           "sets it for every step)")


DUCKDB_KEYS = tuple(DuckdbSettings.model_fields)
EXECUTOR_KEYS = tuple(ExecutorSpec.model_fields)


class RunSettings(DuckdbSettings, ExecutorSpec):
    """Everything about how a step runs: DuckDB's limits, the executor (local or a Dask
    cluster, SLURM) and whether a finished training run may be reused."""

    reuse: bool = Field(True, description="train steps: return a finished run with the same data, "
                                          "base weights and config instead of training (recipes "
                                          "reuse; the CLI's `train` asks with --reuse)")

    @model_validator(mode="after")
    def _one_cluster(self):
        if not self.is_dask and (self.scheduler or self.workers or self.slurm):
            raise ValueError("scheduler, workers and slurm need executor: dask (--executor dask)")
        if self.scheduler and (self.workers or self.slurm):
            raise ValueError("give either scheduler (an existing cluster), workers (a local one) "
                             "or slurm, not several")
        return self

    def executor_spec(self) -> ExecutorSpec:
        return ExecutorSpec(**{k: getattr(self, k) for k in EXECUTOR_KEYS})

    def duckdb(self) -> DuckdbSettings:
        return DuckdbSettings(**{k: getattr(self, k) for k in DUCKDB_KEYS})

    def local(self) -> dict[str, Any]:
        """What a Dask worker runs the step with: these settings without the executor, as
        plain values (sent to the worker; it must not fan out again)."""
        return {k: getattr(self, k) for k in (*DUCKDB_KEYS, "reuse")
                if getattr(self, k) != RunSettings.model_fields[k].default}


def run_settings(value: RunSettings | dict[str, Any] | None, where: str = "run settings") -> RunSettings:
    """``value`` as RunSettings; an unknown key or bad value is a ConfigError (exit 8) that
    names it, with a "did you mean" from the field names."""
    if isinstance(value, RunSettings):
        return value
    try:
        return RunSettings.model_validate({k: v for k, v in (value or {}).items() if v is not None})
    except ValidationError as exc:
        import difflib

        problems = []
        for err in exc.errors():
            key = ".".join(map(str, err["loc"])) or "settings"
            if err["type"] == "extra_forbidden":
                near = difflib.get_close_matches(key, list(RunSettings.model_fields), n=1)
                problems.append(f"{key}: unknown key" + (f"; did you mean {near[0]!r}?" if near else ""))
            else:
                problems.append(f"{key}: {err['msg']}" if err["loc"] else err["msg"])
        raise ConfigError(f"invalid {where}: " + "; ".join(problems),
                          hint="keys: " + ", ".join(RunSettings.model_fields)) from None
