"""The import step (docs/architecture.md).

Every step is a ``thinkforge.manifests.steps.StepDescriptor`` registered by the module that
implements it; ``thinkforge.manifests.steps.load_steps()`` imports every module named by a
``thinkforge.steps`` entry point (this one among them) and returns the registry, which the
CLI, recipes, dry runs and ``thinkforge.steps`` read.
"""

from __future__ import annotations

from thinkforge.manifests.steps import RunContext, StepDescriptor, register_step


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
