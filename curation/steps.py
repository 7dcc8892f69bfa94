"""Where the builtin steps are declared, and the import step (docs/architecture.md).

Every step is a ``thinkforge.manifests.steps.StepDescriptor`` registered by the module that
implements it; ``load_steps()`` imports the builtin ones (below) and returns the
registry, which the CLI, recipes, dry runs and ``thinkforge.steps`` read.  A step
declared anywhere else (a plugin, a test) is in the registry once its module is imported.
"""

from __future__ import annotations

import importlib

from thinkforge.manifests.steps import REGISTRY, RunContext, StepDescriptor, register_step

STEP_MODULES = (
    "thinkforge.generators.sft", "thinkforge.generators.rollouts",
    "thinkforge.filters.passrate", "thinkforge.filters.curriculum", "thinkforge.filters.quality",
    "thinkforge.filters.correct",
    "thinkforge.filters.dedup", "thinkforge.filters.decontam",
    "thinkforge.curation.mix", "thinkforge.curation.split",
    # declared by packages curation does not import (they import curation): loaded by name
    "thinkforge.generators.preferences", "thinkforge.trainers.steps",
)


def load_steps() -> dict[str, StepDescriptor]:
    """The registry with every builtin step declared (imports their modules once)."""
    for module in STEP_MODULES:
        importlib.import_module(module)
    return REGISTRY


def _run_import(ctx: RunContext, inputs, name: str, spec):
    from .importer import import_file

    return {name: import_file(ctx.store, spec.path, spec.options(name))}


def _records_import(store, inputs, name: str, spec):
    from .importer import import_step_record

    return [(name, import_step_record(spec.path, spec.options(name)), [])]


IMPORT = register_step(StepDescriptor(
    type="import", roles=(), config="thinkforge.curation.recipe:InputSpec", run=_run_import,
    records=_records_import, derive_cli=False,
    help="read a file (JSONL, JSON, Parquet, CSV, HF datasets) into a version of a kind"))
