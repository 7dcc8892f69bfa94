"""A teacher whose text the test chooses, installed in place of the real backends.

Backends are tested for real (the tiny local model, SmolLM2 and vLLM in slow tests); what
this replaces is only the model's choice of words, so tests can pin answers that are right
or wrong and count teacher calls (a reused step must make none).
"""

from __future__ import annotations

from collections.abc import Callable


class ScriptedBackend:
    calls = 0

    def __init__(self, answer: Callable, model: str = "scripted", batch_size: int = 4):
        self.answer, self.model = answer, model
        self.identity = {"backend": "scripted", "model": model}
        self.preferred_batch_size = batch_size

    def generate(self, requests):
        from thinkforge.generators.backends import Completion

        ScriptedBackend.calls += len(requests)
        return [Completion(key=r.key, text=self.answer(r), prompt_tokens=10, completion_tokens=5)
                for r in requests]

    def close(self):
        pass


def install(monkeypatch, answer: Callable) -> type[ScriptedBackend]:
    """Make every teacher answer ``answer(request)``; returns the class (its ``calls``)."""
    import thinkforge.generators.engine as engine

    ScriptedBackend.calls = 0
    monkeypatch.setattr(engine, "make_backend", lambda config, model: ScriptedBackend(answer, model))
    return ScriptedBackend
