"""A small store for the console's tests: math-* and code-* datasets with lineage, a
training run, a generation checkpoint and a row holding HTML; two tokens (all / math-*)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from thinkforge.manifests import DatasetStore

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

SCRIPT = "<script>alert('x')</script>"


@dataclass
class Console:
    store: DatasetStore
    token_file: Path
    admin: str  # every dataset
    math: str  # datasets matching math-*

    def client(self, token: str | None = None, **options):
        from fastapi.testclient import TestClient
        from thinkforge.console.app import create_app

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return TestClient(create_app(self.store.root, self.token_file, **options), headers=headers)


def build_store(store: DatasetStore) -> None:
    from thinkforge.generators.runs import RunCheckpoint
    from thinkforge.manifests.training_runs import RunData, RunRecord, TrainingRuns

    from tests.curation.builders import make_prompts, make_sft

    prompts = make_prompts(store, "math-prompts")
    sft = make_sft(store, prompts, "math-sft")
    with store.writer("math-sft", "sft", step={"type": "test.filter", "config": {}}, parents=[sft]) as w:
        w.write([{"id": "x1", "prompt_id": "p-evil", "pair_id": "evil", "category": "math",
                  "reasoning": "on", "system_prompt": "detailed thinking on", "generator": "m",
                  "license": "MIT",
                  "output": f"<think>{SCRIPT}</think>\n\n{SCRIPT}", "verified": True, "answer": SCRIPT,
                  "ground_truth": SCRIPT, "input": [{"role": "user", "content": SCRIPT}]}])
    code = make_prompts(store, "code-prompts")
    make_sft(store, code, "code-sft")
    TrainingRuns(store).publish(RunRecord(
        run_id="run-sft-math-1", method="sft", data=[RunData(
            ref=sft.ref, name=sft.name, version=sft.version, kind=sft.kind,
            fingerprint=sft.fingerprint, rows=sft.rows)],
        base_model="tiny-llama", base_model_sha256="cd" * 32, output_dir="/tmp/weights",
        weights_sha256="ab" * 32))
    checkpoint = RunCheckpoint(store.runs_dir, "math-gen-1", {"name": "math-gen", "kind": "sft",
                                                               "requests": 10})
    now = time.time()
    checkpoint.append([_answer(f"k{i}", now + i, error="timeout" if i == 3 else None) for i in range(4)])
    RunCheckpoint(store.runs_dir, "code-gen-1", {"name": "code-gen", "kind": "sft", "requests": 2})


def _answer(key: str, finished: float, error: str | None = None) -> dict:
    return {"key": key, "prompt_id": key, "mode": "on", "sample": 0, "model": "m", "text": "t",
            "prompt_tokens": 5, "completion_tokens": 0 if error else 20, "finish_reason": "stop",
            "error_kind": error, "error": error, "attempts": 1, "seconds": 1.0,
            "finished_at": finished}


@pytest.fixture(scope="session")
def built_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("console") / "store"
    with pytest.MonkeyPatch.context() as patch:  # unsigned, never with the user's key
        patch.setenv("THINKFORGE_KEY", str(tmp_path_factory.getbasetemp() / "no-signing-key.pem"))
        build_store(DatasetStore(root))
    return root


@pytest.fixture
def console(tmp_path: Path, built_store: Path) -> Console:
    """A fresh copy of the built store per test (a test may damage its copy)."""
    import shutil

    from thinkforge.console.tokens import TokenFile

    shutil.copytree(built_store, tmp_path / "store")
    store = DatasetStore(tmp_path / "store")
    tokens = TokenFile(tmp_path / "tokens.json")
    return Console(store, tokens.path, tokens.add("admin"), tokens.add("mathy", "math-*"))
