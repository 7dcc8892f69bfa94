"""Teacher backends behind one small interface: a batch of chat requests in, completions out.

``make_backend(config, model)`` returns a backend for ``config.backend``:
``transformers`` (local, embedded default), ``openai`` (any OpenAI-compatible server) or
``vllm`` (the offline engine).  Each import of a heavy library happens in its module.
"""

from __future__ import annotations

from .base import Backend, ChatRequest, Completion, Sampling


def make_backend(config, model: str) -> Backend:
    """Build the backend named by ``config.backend`` serving ``model``."""
    if config.backend == "transformers":
        from .hf import TransformersBackend

        return TransformersBackend(config, model)
    if config.backend == "openai":
        from .openai_client import OpenAIBackend

        return OpenAIBackend(config, model)
    if config.backend == "vllm":
        from .vllm_offline import VllmBackend

        return VllmBackend(config, model)
    from manifests.errors import ConfigError

    raise ConfigError(f"unknown backend {config.backend!r}", hint="use transformers, openai or vllm")


__all__ = ["Backend", "ChatRequest", "Completion", "Sampling", "make_backend"]
