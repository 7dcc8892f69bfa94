"""Fixtures of the distillation tests: a tiny 4-layer parent and text from the demo data."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_parent(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    pytest.importorskip("modelopt")
    from tests.trainers.distill.tiny_parent import build_tiny_parent

    return build_tiny_parent(tmp_path_factory.mktemp("distill-parent"))


@pytest.fixture(scope="session")
def demo_texts() -> list[str]:
    data = Path(__file__).resolve().parents[3] / "curation" / "data" / "gsm8k_train_demo.jsonl"
    return data.read_text().splitlines()[:40]


@pytest.fixture(scope="session")
def loaded_parent(tiny_parent):
    from thinkforge.trainers.distill.pipeline import load_parent

    return load_parent(str(tiny_parent))
