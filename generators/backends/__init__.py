"""Teacher backends behind one small interface: a batch of chat requests in, completions out.

``make_backend(config, model)`` returns a backend for ``config.backend``.  The backends are
found through the ``thinkforge.backends`` entry points (docs/architecture.md, "Plugins"):
``transformers`` (local, embedded default), ``openai`` (any OpenAI-compatible server) and
``vllm`` (the offline engine) are thinkforge's own; an installed package adds one with an
entry point, and ``register_backend`` adds one for this process (a notebook, a test).  Each
heavy library is imported by its backend's module, only when that backend is made.
"""

from __future__ import annotations

from thinkforge.manifests import plugins

from .base import Backend, ChatRequest, Completion, Sampling

_REGISTERED: dict[str, str] = {}  # register_backend(): name -> "package.module:Class"


def backend_names() -> list[str]:
    """Every backend name `backend:` and `--backend` accept (entry points, then registered)."""
    return [*plugins.discovered("backends"), *(n for n in _REGISTERED if n not in plugins.discovered("backends"))]


def register_backend(name: str, target: str) -> None:
    """Make ``backend: name`` build ``target`` ("package.module:Class", whose constructor
    takes (BackendConfig, model)) in this process."""
    _REGISTERED[name] = target


def backend_class(name: str) -> type:
    """The class of backend ``name`` (imports its module)."""
    import importlib

    if name in _REGISTERED:
        module, cls = _REGISTERED[name].split(":")
        return getattr(importlib.import_module(module), cls)
    if name not in plugins.discovered("backends"):
        from thinkforge.manifests.errors import ConfigError

        raise ConfigError(f"unknown backend {name!r}", hint=f"use one of {', '.join(backend_names())}")
    return plugins.load("backends", name)


def make_backend(config, model: str) -> Backend:
    """Build the backend named by ``config.backend`` serving ``model``."""
    return backend_class(config.backend)(config, model)


__all__ = ["Backend", "ChatRequest", "Completion", "Sampling", "backend_class", "backend_names",
           "make_backend", "register_backend"]
