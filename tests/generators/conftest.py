"""Fixtures of the generator tests: a tiny local model, imported prompts, a fake backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer (built once per session)."""
    pytest.importorskip("transformers")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def gsm8k(store, data_dir):
    from curation.importer import ImportOptions, import_file

    return import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                       ImportOptions(name="gsm8k", preset="gsm8k"))


@pytest.fixture
def humaneval(store, data_dir):
    from curation.importer import ImportOptions, import_file

    return import_file(store, data_dir / "humaneval.jsonl",
                       ImportOptions(name="humaneval", preset="humaneval"))


class ScriptedBackend:
    """Answers from a function of the request: lets tests pin the text the teacher writes."""

    calls = 0

    def __init__(self, answer, model="scripted"):
        self.answer, self.model = answer, model
        self.identity = {"backend": "scripted", "model": model}
        self.preferred_batch_size = 4

    def generate(self, requests):
        from generators.backends import Completion

        ScriptedBackend.calls += len(requests)
        return [Completion(key=r.key, text=self.answer(r), prompt_tokens=10, completion_tokens=5)
                for r in requests]

    def close(self):
        pass


@pytest.fixture
def scripted(monkeypatch):
    """scripted(fn) makes every teacher answer fn(request) (fn sees messages and sampling)."""
    import generators.engine as engine

    ScriptedBackend.calls = 0

    def install(answer):
        monkeypatch.setattr(engine, "make_backend", lambda config, model: ScriptedBackend(answer, model))
        return ScriptedBackend

    return install
