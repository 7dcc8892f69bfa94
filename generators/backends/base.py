"""The backend interface: plain data in and out, so the engine does not care who generates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Sampling:
    """Sampling of one request; temperature 0 means greedy decoding."""

    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int | None = None


@dataclass
class ChatRequest:
    key: str                      # deterministic request key (see thinkforge.generators.runs)
    messages: list[dict[str, str]]
    sampling: Sampling
    mode: str | None = None       # on / off: for a teacher switched per request (openai)
    # the start of the assistant's reply, which the model continues (answer forcing,
    # generators/forcing.py); the completion's text is only what follows it.  A backend
    # that cannot continue a reply returns an error completion (error_kind "no_prefill")
    prefill: str | None = None


@dataclass
class Completion:
    key: str
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"   # stop | length | error
    error_kind: str | None = None  # e.g. rate_limited, server_error, timeout, connection, malformed
    error: str | None = None
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_kind is None


class Backend(Protocol):
    """What the generation engine needs from a teacher."""

    identity: dict[str, Any]      # backend, model, device, dtype...: goes into the manifest
    preferred_batch_size: int     # how many requests one generate() call should get

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """Complete every request (same order); failures become error completions."""

    def close(self) -> None:
        """Release the model or the connection pool."""
