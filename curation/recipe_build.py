"""Run (or plan) a validated recipe: inputs, then steps in order, then reports.

Reuse is decided per step by the store's own rule (same step type and resolved config,
same input fingerprints: ``DatasetStore.find_reusable``).  ``plan_recipe`` predicts it
without writing anything; ``build_recipe`` runs what is missing.  A step that fails stops
the build; the versions finished before it stay published, and the next build reuses
them and continues from the failed step.  ``force=True`` rebuilds every step (a new
version each, even when the bytes come out identical).  Each build writes a record of
what it used and produced to ``<store>/runs/builds/<recipe>.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.errors import NotFoundError
from thinkforge.manifests.gates import verified_phrase, verified_rate_warning
from thinkforge.manifests.manifest import utc_now
from thinkforge.manifests.steps import RunContext, execute, predict_reuse
from thinkforge.manifests.store import validate_name

from .contamination import recipe_warnings, version_warnings
from .recipe import InputSpec, Recipe, ResolvedStep
from .steps import IMPORT

Log = Callable[[str], None]


class _NoReuseStore(DatasetStore):
    """A view of the store in which nothing is reusable: `--force` rebuilds every step."""

    reuses = False  # read by steps with their own reuse rule (train.*: training runs)

    def find_reusable(self, name, step, parents):  # noqa: D401
        return None


@dataclass
class Outcome:
    """What happened (or would happen) to one input or step."""

    label: str
    status: str                      # built | reused | would run | would reuse | pinned
    outputs: dict[str, str | None] = field(default_factory=dict)   # name -> ref
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)   # e.g. a low verified rate

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "status": self.status, "outputs": self.outputs,
                "rows": self.rows, "seconds": round(self.seconds, 2), "warnings": self.warnings}


def _resolve_input(store: DatasetStore, key: str, spec: InputSpec, run: bool, log: Log
                   ) -> tuple[Manifest | None, Outcome]:
    if spec.version is not None:
        m = store.resolve(spec.version)
        return m, Outcome(f"inputs.{key}", "pinned", {key: m.ref}, {key: m.rows})
    validate_name(key)
    if not Path(spec.path).is_file() and not Path(spec.path).is_dir():
        raise NotFoundError(f"inputs.{key}: file {spec.path} does not exist",
                         hint="paths in a recipe are relative to the recipe file")
    found = predict_reuse(store, IMPORT, {}, key, spec)[key]
    if found is not None:
        return found, Outcome(f"inputs.{key}", "reused" if run else "would reuse",
                              {key: found.ref}, {key: found.rows})
    if not run:
        return None, Outcome(f"inputs.{key}", "would run", {key: None})
    start = time.monotonic()
    m = execute(RunContext(store), IMPORT, {}, key, spec)[key]
    log(f"imported {spec.path} -> {m.ref} ({m.rows} rows)")
    return m, Outcome(f"inputs.{key}", "built", {key: m.ref}, {key: m.rows},
                      time.monotonic() - start)


def _inputs_of(step: ResolvedStep, produced: dict[str, Manifest | None]) -> dict[str, Any] | None:
    """The step's role -> Manifest(s), or None when an input is not built yet (dry run)."""
    out: dict[str, Any] = {}
    for role, ref in step.refs.items():
        values = [produced.get(r) for r in (ref if isinstance(ref, list) else [ref])]
        if any(v is None for v in values):
            return None
        out[role] = values if isinstance(ref, list) else values[0]
    return out


def plan_recipe(store: DatasetStore, recipe: Recipe, steps: list[ResolvedStep],
                *, force: bool = False) -> list[Outcome]:
    """What a build would do, step by step; writes nothing."""
    return _walk(store, recipe, steps, run=False, force=force, log=lambda _: None, quiet=True)


def build_recipe(store: DatasetStore, recipe: Recipe, steps: list[ResolvedStep], *,
                 force: bool = False, quiet: bool = False, log: Log = lambda _: None
                 ) -> list[Outcome]:
    """Run the recipe; return an outcome per input and step (raises on the first failure)."""
    outcomes: list[Outcome] = []
    try:
        outcomes = _walk(store, recipe, steps, run=True, force=force, log=log, quiet=quiet,
                         sink=outcomes)
    finally:
        _write_record(store, recipe, outcomes, failed=len(outcomes) < len(recipe.inputs) + len(steps))
    return outcomes


def _walk(store: DatasetStore, recipe: Recipe, steps: list[ResolvedStep], *, run: bool,
          force: bool, log: Log, quiet: bool, sink: list[Outcome] | None = None) -> list[Outcome]:
    outcomes = sink if sink is not None else []
    working = _NoReuseStore(store.root) if force else store
    produced: dict[str, Manifest | None] = {}
    for key, spec in recipe.inputs.items():
        manifest, outcome = _resolve_input(working, key, spec, run, log)
        produced[key] = manifest
        outcomes.append(outcome)
    ctx = RunContext(store=working, quiet=quiet, settings=recipe.resources)
    for step in steps:
        inputs = _inputs_of(step, produced)
        reusable = predict_reuse(working, step.type, inputs, step.spec.name, step.config) \
            if inputs is not None else {n: None for n in step.type.output_names(step.spec.name)}
        contamination = recipe_warnings(recipe, steps, step)
        contamination += [w for w in version_warnings(store, step, inputs or {})
                          if not contamination]   # one warning per cause is enough
        if not run:
            done = all(v is not None for v in reusable.values())
            produced.update(reusable)
            outcomes.append(Outcome(step.label, "would reuse" if done else "would run",
                                    {n: m.ref if m else None for n, m in reusable.items()},
                                    {n: m.rows for n, m in reusable.items() if m},
                                    warnings=contamination))
            continue
        before = set(store.version_keys())
        log(f"{step.label}: {'reusing' if all(reusable.values()) else 'running'} ...")
        start = time.monotonic()
        made = execute(ctx, step.type, inputs, step.spec.name, step.config)
        produced.update(made)
        fresh = any(f"{m.name}/{m.version}" not in before and not getattr(m, "reused", False)
                    for m in made.values())
        outcome = Outcome(step.label, "built" if fresh else "reused",
                          {n: m.ref for n, m in made.items()}, {n: m.rows for n, m in made.items()},
                          time.monotonic() - start)
        outcomes.append(outcome)
        log(f"{step.label}: {outcome.status} "
            + ", ".join(f"{ref} ({_rows_phrase(made[n])})" for n, ref in outcome.outputs.items()))
        outcome.warnings += contamination
        outcome.warnings += [w for w in map(verified_rate_warning, made.values()) if w]
    return outcomes


def _rows_phrase(manifest: Manifest) -> str:
    verified = verified_phrase(manifest)
    return f"{manifest.rows} rows" + (f", {verified}" if verified else "")


def _write_record(store: DatasetStore, recipe: Recipe, outcomes: list[Outcome], failed: bool) -> None:
    folder = store.runs_dir / "builds"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"recipe": recipe.name, "finished_at": utc_now(), "failed": failed,
              "steps": [o.to_dict() for o in outcomes]}
    tmp = folder / f".{recipe.name}.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / f"{recipe.name}.json")


def outputs_by_name(outcomes: list[Outcome]) -> dict[str, str]:
    return {n: ref for o in outcomes for n, ref in o.outputs.items() if ref}
