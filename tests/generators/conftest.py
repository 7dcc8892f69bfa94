"""Fixtures of the generator tests: a tiny local model, imported prompts, a scripted teacher."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.generators.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer (built once per session)."""
    pytest.importorskip("transformers")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def gsm8k(store, data_dir):
    from thinkforge.curation.importer import ImportOptions, import_file

    return import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                       ImportOptions(name="gsm8k", preset="gsm8k"))


@pytest.fixture
def humaneval(store, data_dir):
    from thinkforge.curation.importer import ImportOptions, import_file

    return import_file(store, data_dir / "humaneval.jsonl",
                       ImportOptions(name="humaneval", preset="humaneval"))


@pytest.fixture
def scripted(monkeypatch):
    """scripted(fn) makes every teacher answer fn(request) (fn sees messages and sampling)."""
    from tests.scripted_teacher import install

    return lambda answer: install(monkeypatch, answer)
