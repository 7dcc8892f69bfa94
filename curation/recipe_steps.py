"""The step registry of recipes: step type -> config model, input roles, run function.

Wiring a new step into recipes is one ``StepType`` entry here, not code in the engine.  Each
entry also says how the step records itself (``records``: output name, step type + config,
parents), so ``--dry-run`` can tell which steps an existing version would satisfy without
running anything: the same test ``DatasetStore.find_reusable`` applies when the step runs.
Step modules are imported lazily (inside the loaders), so reading a recipe stays fast and
never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel

from manifests import DatasetStore, Manifest
from manifests.manifest import Step

Inputs = dict[str, Any]  # role -> Manifest (or list of Manifest for `many` roles)


@dataclass(frozen=True)
class Role:
    name: str
    kinds: tuple[str, ...]
    many: bool = False        # a list of versions (decontam's benchmarks)
    optional: bool = False


@dataclass
class BuildContext:
    store: DatasetStore
    quiet: bool = False
    resources: dict[str, Any] = field(default_factory=dict)   # DuckDB limits for filters

    def filter_resources(self):
        from filters.base import Resources

        return Resources(**{"progress": not self.quiet, **self.resources})


@dataclass(frozen=True)
class StepType:
    name: str
    config_model: Callable[[], type[BaseModel]]
    roles: tuple[Role, ...]
    run: Callable[[BuildContext, Inputs, str, Any], dict[str, Manifest]]
    records: Callable[[DatasetStore, Inputs, str, Any], list[tuple[str, Step, list[Manifest]]]]
    help: str = ""

    def outputs(self, name: str) -> list[str]:
        if self.name == "split":
            from .split import split_names

            return list(split_names(name).values())
        return [name]


def _one(step_type: str, dump: Callable[[BaseModel], dict], *roles: str):
    """records() for a step whose parents are its role inputs in order."""
    def records(store, inputs, name, config):
        parents: list[Manifest] = []
        for r in roles:
            value = inputs.get(r)
            parents += value if isinstance(value, list) else ([value] if value is not None else [])
        return [(name, Step(type=step_type, config=dump(config)), parents)]
    return records


def _json(config: BaseModel) -> dict:
    return config.model_dump(mode="json")


def _python(config: BaseModel) -> dict:
    return config.model_dump()


# -- generators ------------------------------------------------------------------------------
def _sft_model():
    from generators.config import SftConfig
    return SftConfig


def _rollout_model():
    from generators.config import RolloutConfig
    return RolloutConfig


def _run_sft(ctx, inputs, name, config):
    from generators.sft import generate_sft
    return {name: generate_sft(ctx.store, inputs["prompts"], name, config, progress=not ctx.quiet)}


def _run_rollouts(ctx, inputs, name, config):
    from generators.rollouts import generate_rollouts
    return {name: generate_rollouts(ctx.store, inputs["prompts"], name, config,
                                    progress=not ctx.quiet)}


# -- filters -----------------------------------------------------------------------------------
def _model(module: str, cls: str):
    def load():
        import importlib
        return getattr(importlib.import_module(module), cls)
    return load


def _passrate_prompts(store, inputs):
    if inputs.get("prompts") is not None:
        return inputs["prompts"]
    from filters.passrate import prompts_of
    return prompts_of(store, inputs["rollouts"])


def _run_passrate(ctx, inputs, name, config):
    from filters.passrate import run_passrate
    return {name: run_passrate(ctx.store, inputs["rollouts"], inputs.get("prompts"), name, config,
                               resources=ctx.filter_resources())}


def _records_passrate(store, inputs, name, config):
    return [(name, Step(type="filter.passrate", config=_json(config)),
             [inputs["rollouts"], _passrate_prompts(store, inputs)])]


def _run_filter(function: str, role: str):
    def run(ctx, inputs, name, config):
        import importlib
        module, fn = function.rsplit(".", 1)
        step = getattr(importlib.import_module(module), fn)
        return {name: step(ctx.store, inputs[role], name, config, resources=ctx.filter_resources())}
    return run


def _run_decontam(ctx, inputs, name, config):
    from filters.decontam import run_decontam
    return {name: run_decontam(ctx.store, inputs["data"], list(inputs["against"]), name, config,
                               resources=ctx.filter_resources())}


def _records_decontam(store, inputs, name, config):
    from filters.decontam import _DecontamStep
    step = _DecontamStep(**config.model_dump(), benchmark_files=[])
    return [(name, Step(type="filter.decontam", config=_json(step)),
             [inputs["data"], *inputs["against"]])]


# -- curation's own: mix and split ------------------------------------------------------------
def _run_mix(ctx, inputs, name, config):
    from .mix import run_mix
    return {name: run_mix(ctx.store, inputs["data"], name, config)}


def _run_split(ctx, inputs, name, config):
    from .split import run_split, split_names
    parts = run_split(ctx.store, inputs["data"], name, config)
    return {split_names(name)[part]: m for part, m in parts.items()}


def _records_split(store, inputs, name, config):
    from .split import part_step, split_names
    return [(split_names(name)[part], part_step(config, part), [inputs["data"]])
            for part in ("train", "validation")]


PROMPTS = ("prompts",)
TEXT_KINDS = ("prompts", "sft", "rl_pool")

STEP_TYPES: dict[str, StepType] = {s.name: s for s in (
    StepType("generate_sft", _sft_model, (Role("prompts", PROMPTS),), _run_sft,
             _one("generate_sft", _python, "prompts"),
             "paired reasoning ON/OFF answers from the teacher(s) -> sft"),
    StepType("generate_rollouts", _rollout_model, (Role("prompts", PROMPTS),), _run_rollouts,
             _one("generate_rollouts", _python, "prompts"),
             "K sampled answers per prompt, scored -> rollouts"),
    StepType("passrate", _model("filters.passrate", "PassRateConfig"),
             (Role("rollouts", ("rollouts",)), Role("prompts", PROMPTS, optional=True)),
             _run_passrate, _records_passrate,
             "pass rate per prompt, difficulty buckets, drop easy -> rl_pool"),
    StepType("curriculum", _model("filters.curriculum", "CurriculumConfig"),
             (Role("pool", ("rl_pool",)),), _run_filter("filters.curriculum.run_curriculum", "pool"),
             _one("filter.curriculum", _json, "pool"), "progressive batching order -> rl_pool"),
    StepType("quality", _model("filters.quality", "QualityConfig"),
             (Role("data", ("sft", "rollouts")),), _run_filter("filters.quality.run_quality", "data"),
             _one("filter.quality", _json, "data"), "think-tag format, length, language rules"),
    StepType("dedup", _model("filters.dedup", "DedupConfig"), (Role("data", TEXT_KINDS),),
             _run_filter("filters.dedup.run_dedup", "data"), _one("filter.dedup", _json, "data"),
             "exact and MinHash near-duplicate removal"),
    StepType("decontam", _model("filters.decontam", "DecontamConfig"),
             (Role("data", TEXT_KINDS), Role("against", TEXT_KINDS, many=True)), _run_decontam,
             _records_decontam, "drop rows sharing n-grams with benchmark versions"),
    StepType("mix", _model("curation.mix", "MixConfig"),
             (Role("data", ("prompts", "sft", "rl_pool"), many=True),), _run_mix,
             _one("mix", _json, "data"),
             "pool one or more versions, sample to weights by category and reasoning mode"),
    StepType("split", _model("curation.split", "SplitConfig"), (Role("data", (
        "prompts", "sft", "rl_pool", "rollouts", "preferences")),), _run_split, _records_split,
             "train / validation versions by a hash of the id"),
)}


def predict_reuse(store: DatasetStore, step_type: StepType, inputs: Inputs, name: str,
                  config: Any) -> dict[str, Manifest | None]:
    """For each output of the step: the existing version a run would reuse, or None."""
    out: dict[str, Manifest | None] = {}
    for output, step, parents in step_type.records(store, inputs, name, config):
        found = store.find_reusable(output, step, [p.as_parent() for p in parents]) \
            if store.datasets_dir.is_dir() else None
        if found is not None and found.provenance.get("errors_by_kind"):
            found = None  # generation with failed requests reruns them (generators.steps)
        out[output] = found
    return out
