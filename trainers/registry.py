"""The training methods, found through the ``thinkforge.trainers`` entry points
(docs/architecture.md, "Plugins").  Each ``TrainingMethod`` owns its metadata (the record
kinds it trains on, help, example); its config model and trainer load on first use, so
nothing here imports torch or TRL.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from thinkforge.manifests import plugins
from thinkforge.manifests.errors import ConfigError


@dataclass(frozen=True)
class TrainingMethod:
    name: str
    kinds: tuple[str, ...]   # the record kinds it trains on
    config: str              # "module:Class": its pydantic config (no torch at import)
    trainer: str             # the module whose METHOD runs it (imports torch / TRL)
    help: str
    example: str

    def config_model(self):
        module, cls = self.config.split(":")
        return getattr(importlib.import_module(module), cls)

    def load(self):
        return importlib.import_module(self.trainer).METHOD


def _method(name: str, kinds: tuple[str, ...], config: str, help: str, example: str) -> TrainingMethod:
    return TrainingMethod(name, kinds, f"thinkforge.trainers.{name}_config:{config}",
                          f"thinkforge.trainers.{name}", help, example)


# the built-in methods; each is named by a `thinkforge.trainers` entry point (pyproject.toml)
SFT = _method("sft", ("sft",), "SftTrainConfig",
              "SFT (TRL SFTTrainer) on an sft version -> a model folder + run record",
              "thinkforge train sft --data demo-sft-train --model smollm2-135m --output out/sft --max-steps 20")
GRPO = _method("grpo", ("rl_pool",), "GrpoTrainConfig",
               "GRPO in curriculum order on an rl_pool version -> model + run record",
               "thinkforge train grpo --data demo-rl --model out/sft --output out/grpo --max-steps 4")
RLOO = _method("rloo", ("rl_pool",), "RlooTrainConfig",
               "RLOO on an rl_pool version (GRPO's rewards) -> model + run record",
               "thinkforge train rloo --data demo-rl --model out/sft --output out/rloo --max-steps 4")
DPO = _method("dpo", ("preferences",), "DpoTrainConfig",
              "DPO on a preferences version -> model + run record",
              "thinkforge train dpo --data demo-prefs --model out/sft --output out/dpo --max-steps 10")
REWARD = _method("reward", ("preferences",), "RewardTrainConfig",
                 "a reward model on a preferences version -> model + run record",
                 "thinkforge train reward --data demo-prefs --model smollm2-135m --output out/rm")


def methods() -> dict[str, TrainingMethod]:
    """Every training method (entry points, thinkforge's own and any plugin's)."""
    return {name: plugins.load("trainers", name) for name in plugins.discovered("trainers")}


def method_spec(name: str) -> TrainingMethod:
    table = methods()
    if name not in table:
        import difflib

        near = difflib.get_close_matches(name, table, n=1)
        raise ConfigError(f"unknown training method {name!r}"
                          + (f"; did you mean {near[0]!r}?" if near else ""),
                          hint=f"methods: {', '.join(table)}")
    return table[name]


def get_method(name: str):
    """The method's trainer (``METHOD`` of its module; imports torch and TRL)."""
    return method_spec(name).load()


def config_model(name: str):
    """The pydantic config of a method, without importing torch or TRL."""
    return method_spec(name).config_model()
