"""Recipe steps `train.sft`, `train.grpo`, `train.dpo`, `train.reward`, `train.rloo`.

Each is the method's own config (``trainers/<method>_config.py``) plus ``model`` and
``output``; the step's input role ``data`` names a version of the kinds the method takes.
A train step is **reused** when a finished run of the same method has the same resolved
config (model included) and the same data fingerprint, and its weights are still on disk
(``TrainingRuns.find_reusable``): rerunning an unchanged recipe trains nothing.  A step's
output name labels the run in the build log; the run record lives in
``<store>/training-runs/`` (``thinkforge runs``).  To train on an earlier step's model
(SFT, then GRPO), give that step's ``output`` folder as ``model``.

The step registry loads this module by name (``curation.steps.STEP_MODULES``), so curation
never imports the trainers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, create_model

from manifests.training_runs import RunRecord, TrainingRuns, config_hash

from .registry import METHOD_MODULES, config_model


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


def step_config_model(method: str):
    base = config_model(method)
    return create_model(
        f"Recipe{base.__name__}", __base__=base,
        model=(str, Field(description="base model: a folder, smollm2-135m, or an earlier train "
                                      "step's name (its output folder)")),
        output=(str, Field(description="directory of the trained model (relative to the "
                                       "working directory)")))


def _split(method: str, config) -> tuple[str, str, Any]:
    values = config.model_dump()
    model, output = values.pop("model"), values.pop("output")
    return model, output, config_model(method)(**values)


def _run(method: str):
    def run(ctx, inputs, name, config):
        from .base import run_trainer
        from .registry import get_method

        model, output, method_config = _split(method, config)
        before = set(TrainingRuns(ctx.store).ids())
        record = run_trainer(get_method(method), ctx.store, inputs["data"].ref, model, output,
                             method_config, reuse=True,
                             log=(lambda _: None) if ctx.quiet else _log)
        return {name: TrainOutcome(record, reused=record.run_id in before)}
    return run


def _predict(method: str):
    """The finished run a build would reuse (dry runs and the build log), or None."""
    def predict(store, inputs, name, config):
        from .base import resolved_config
        from .registry import get_method

        model, _, method_config = _split(method, config)
        resolved = resolved_config(get_method(method), method_config, model)
        found = TrainingRuns(store).find_reusable(method, config_hash(resolved),
                                                  [inputs["data"].fingerprint])
        return {name: TrainOutcome(found, reused=True) if found else None}
    return predict


def _log(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


KINDS = {"sft": ("sft",), "grpo": ("rl_pool",), "rloo": ("rl_pool",),
         "dpo": ("preferences",), "reward": ("preferences",)}
HELP = {"sft": "SFT (TRL SFTTrainer) on an sft version -> a model folder + run record",
        "grpo": "GRPO in curriculum order on an rl_pool version -> model + run record",
        "rloo": "RLOO on an rl_pool version (GRPO's rewards) -> model + run record",
        "dpo": "DPO on a preferences version -> model + run record",
        "reward": "a reward model on a preferences version -> model + run record"}


def _descriptor(method: str):
    from manifests.steps import Role, StepDescriptor

    return StepDescriptor(
        type=f"train.{method}", command=method, group="train", output_kind="run",
        roles=(Role("data", KINDS[method]),), config=step_config_model(method), run=_run(method),
        records=lambda *a: [], reuse=_predict(method), derive_cli=False, help=HELP[method])


def register() -> None:
    """Declare the train steps (recipes, dry runs); `thinkforge train` is written by hand."""
    from manifests.steps import register_step

    for method in METHOD_MODULES:
        register_step(_descriptor(method))


register()
