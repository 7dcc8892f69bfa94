"""Teacher backends behind one small interface: a batch of chat requests in, completions out.

``make_backend(config, model)`` returns a backend for ``config.backend``, looked up in
``BACKENDS`` (name -> class): ``transformers`` (local, embedded default), ``openai`` (any
OpenAI-compatible server) or ``vllm`` (the offline engine).  Each import of a heavy library
happens in its module.
"""

from __future__ import annotations

from .base import Backend, ChatRequest, Completion, Sampling

# name -> "module:Class" (relative to this package or absolute); the class is imported only
# when a backend of that name is made.  `BackendConfig.backend` and `--backend` take these
# names; `register_backend` adds one (a module of its own, no other file to touch).
BACKENDS: dict[str, str] = {
    "transformers": ".hf:TransformersBackend",      # local, CPU or GPU; the embedded default
    "openai": ".openai_client:OpenAIBackend",       # any OpenAI-compatible server
    "vllm": ".vllm_offline:VllmBackend",            # the offline vllm.LLM engine
}


def register_backend(name: str, target: str) -> None:
    """Make ``backend: name`` build ``target`` ("package.module:Class", whose constructor
    takes (BackendConfig, model))."""
    BACKENDS[name] = target


def make_backend(config, model: str) -> Backend:
    """Build the backend named by ``config.backend`` serving ``model``."""
    import importlib

    target = BACKENDS.get(config.backend)
    if target is None:
        from thinkforge.manifests.errors import ConfigError

        raise ConfigError(f"unknown backend {config.backend!r}",
                          hint=f"use one of {', '.join(BACKENDS)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module, __name__), cls)(config, model)


__all__ = ["BACKENDS", "Backend", "ChatRequest", "Completion", "Sampling", "make_backend",
           "register_backend"]
