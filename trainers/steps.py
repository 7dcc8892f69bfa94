"""The train steps `train.sft`, `train.grpo`, `train.dpo`, `train.reward`, `train.rloo`: one
descriptor each (docs/architecture.md), from which `thinkforge train METHOD` (options derived by
``thinkforge.step_cmds``, as for the filters), recipe steps, `--dry-run` and reuse all come.

Each is the method's own config (``trainers/<method>_config.py``) plus ``model`` and
``output``; the step's input role ``data`` names a version of the kinds the method takes.
A train step is **reused** when a finished run of the same method has the same resolved
config, starts from the same base weights (``base_model_sha256``, a content hash of the
model folder: ``trainers/model_key.py``; the ``--model`` string itself is not the key) and
has the same data fingerprint, and its weights are still in the step's ``output`` folder
(``TrainingRuns.find_reusable``): rerunning an unchanged recipe trains nothing, and
retraining SFT into the folder GRPO starts from makes GRPO train again.  A step's
output name labels the run in the build log; the run record lives in
``<store>/training-runs/`` (``thinkforge runs``).  To train on an earlier step's model
(SFT, then GRPO), give that step's ``output`` folder as ``model``.

On the command line ``--data`` also takes the path of a pulled ``manifest.json`` (a cluster
node trains without the catalog); ``--reuse`` opts into reuse there (a recipe always reuses;
``build --force`` never does).  The dry run verifies the data, runs the method's checks
(curriculum alignment, vLLM) and prints the resolved config and the run it would reuse.

The step registry finds this module through its ``thinkforge.steps`` entry point
(pyproject.toml), so no lower layer imports the trainers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, create_model
from thinkforge.manifests.training_runs import RunRecord, TrainingRuns

from .registry import config_model, methods

LOG = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    """What a train step hands the recipe engine (it reads name, version, ref, rows)."""

    record: RunRecord
    reused: bool

    @property
    def name(self) -> str:
        return self.record.run_id

    @property
    def version(self) -> str:
        return "run"

    @property
    def ref(self) -> str:
        return self.record.run_id

    @property
    def rows(self) -> int:
        return self.record.data[0].rows if self.record.data else 0

    @property
    def output_dir(self) -> str:
        return self.record.output_dir

    def to_json(self) -> dict[str, Any]:
        return self.record.model_dump()


def step_config_model(method: str):
    base = config_model(method)
    return create_model(
        f"Recipe{base.__name__}", __base__=base,
        model=(str, Field(description="base model: a folder (an earlier train step's output), "
                                      "smollm2-135m (embedded) or a hub id")),
        output=(str, Field(description="directory of the trained model (relative to the "
                                       "working directory)")))


def _split(method: str, config) -> tuple[str, str, Any]:
    values = config.model_dump()
    model, output = values.pop("model"), values.pop("output")
    return model, output, config_model(method)(**values)


def _data_ref(value) -> str:
    """What ``run_trainer`` takes: a store reference, or the path of a pulled manifest."""
    return str(value) if isinstance(value, Path) else value.ref


def _fingerprint(value) -> str:
    if isinstance(value, Path):
        from thinkforge.manifests import Manifest

        return Manifest.load(value).fingerprint
    return value.fingerprint


def _reuses(ctx_or_store) -> bool:
    """False for ``build --force`` (its store view reuses nothing) and a CLI run without
    --reuse (``settings.reuse``)."""
    store = getattr(ctx_or_store, "store", ctx_or_store)
    settings = getattr(ctx_or_store, "settings", None)
    return (settings is None or settings.reuse) and getattr(store, "reuses", True)


def _run(method: str):
    def run(ctx, inputs, name, config):
        from .base import run_trainer
        from .registry import get_method

        model, output, method_config = _split(method, config)
        before = set(TrainingRuns(ctx.store).ids())
        record = run_trainer(get_method(method), ctx.store, _data_ref(inputs["data"]), model,
                             output, method_config, reuse=_reuses(ctx),
                             log=(lambda _: None) if ctx.quiet else _log)
        if record is None:  # a rank > 0 of a distributed run: rank 0 publishes
            return {}
        return {name: TrainOutcome(record, reused=record.run_id in before)}
    return run


def _predict(method: str):
    """The finished run a build would reuse (dry runs and the build log), or None."""
    def predict(store, inputs, name, config):
        from .base import resolved_config, run_key
        from .registry import get_method

        if not _reuses(store):
            return {name: None}
        model, output, method_config = _split(method, config)
        resolved = resolved_config(get_method(method), method_config, model)
        found = TrainingRuns(store).find_reusable(method, run_key(resolved),
                                                  [_fingerprint(inputs["data"])], output)
        return {name: TrainOutcome(found, reused=True) if found else None}
    return predict


def _plan(method: str):
    """What a dry run adds: the data verified (sha256 of every shard), the method's checks
    (curriculum alignment, vLLM on CPU), the resolved config of the run record."""
    def plan(store, inputs, name, config):
        from .base import resolved_config
        from .data import open_data
        from .registry import get_method

        meta = get_method(method)
        model, output, method_config = _split(method, config)
        data = open_data(store, _data_ref(inputs["data"]), meta.kinds)
        for check in meta.checks:
            check(data, method_config, store)
        return {"method": method, "data": data.ref, "fingerprint": data.manifest.fingerprint,
                "rows": data.manifest.rows, "verified": True, "output": output,
                "inputs": [data.ref], "config": resolved_config(meta, method_config, model)}
    return plan


def _log(message: str) -> None:
    LOG.info(message)


DATA_HELP = "dataset reference (name, name@v3) or the path of a pulled manifest.json"


def _descriptor(spec):
    from thinkforge.manifests.steps import Role, StepDescriptor

    method = spec.name
    return StepDescriptor(
        type=f"train.{method}", command=method, group="train", output_kind="run",
        roles=(Role("data", spec.kinds, flag=True, files=True, help=DATA_HELP),),
        config=step_config_model(method), run=_run(method), records=lambda *a: [],
        reuse=_predict(method), plan=_plan(method), help=spec.help,
        examples=(spec.example,))


def register() -> None:
    """Declare the train steps: recipes, dry runs, reuse and `thinkforge train METHOD`."""
    from thinkforge.manifests.steps import register_step

    for spec in methods().values():
        register_step(_descriptor(spec))


register()
