"""The training methods, by name; modules load on first use (no torch at import time)."""

from __future__ import annotations

import importlib

from thinkforge.manifests.errors import ConfigError

METHOD_MODULES = {method: f"thinkforge.trainers.{method}" for method in ("sft", "grpo", "dpo", "reward", "rloo")}


def get_method(name: str):
    if name not in METHOD_MODULES:
        import difflib

        near = difflib.get_close_matches(name, METHOD_MODULES, n=1)
        raise ConfigError(f"unknown training method {name!r}"
                          + (f"; did you mean {near[0]!r}?" if near else ""),
                          hint=f"methods: {', '.join(METHOD_MODULES)}")
    return importlib.import_module(METHOD_MODULES[name]).METHOD


def config_model(name: str):
    """The pydantic config of a method, without importing torch or TRL."""
    module = importlib.import_module(METHOD_MODULES[name] + "_config")
    return next(v for k, v in vars(module).items()
                if k.endswith("TrainConfig") and isinstance(v, type) and v.__module__ == module.__name__)
