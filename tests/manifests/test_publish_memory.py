"""Publishing under a DuckDB memory bound (``writer.PUBLISH_MEMORY``, spilling under
.staging) gives the manifest an unbounded publish gives, runs the same checks, and leaves
no spill directory behind."""

import json

import pytest
import thinkforge.manifests.writer as writer
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import InputDataError

from .test_store import prompt_rows


def manifest_without_time(store, m) -> dict:
    data = json.loads((store.version_dir(m) / "manifest.json").read_text())
    data.pop("created_at")
    data.pop("version")
    return data


def publish_sft_like(store: DatasetStore, name: str) -> dict:
    with store.writer(name, "prompts", step={"type": "import", "config": {}}) as w:
        for start in range(0, 30_000, 10_000):
            w.write(prompt_rows(10_000, start))
        w.reject([{"reason": "duplicate key", "raw": "x"}])
    return manifest_without_time(store, w.manifest)


@pytest.mark.parametrize("limit", ["4MiB", "1MiB"])
def test_a_bounded_publish_writes_the_manifest_an_unbounded_one_does(tmp_path, monkeypatch, limit):
    monkeypatch.setattr(writer, "PUBLISH_MEMORY", None)
    unbounded = publish_sft_like(DatasetStore(tmp_path / "a"), "p")
    monkeypatch.setattr(writer, "PUBLISH_MEMORY", limit)  # 1MiB: too small, rerun unbounded
    store = DatasetStore(tmp_path / "b")
    assert publish_sft_like(store, "p") == unbounded
    assert not [p for p in (store.root / ".staging").iterdir() if p.name.startswith("spill-")]


def test_a_bounded_publish_still_refuses_duplicate_keys(store, monkeypatch):
    monkeypatch.setattr(writer, "PUBLISH_MEMORY", "4MiB")
    rows = prompt_rows(20_000) + prompt_rows(1, 7)
    with pytest.raises(InputDataError, match="duplicate row key"):
        with store.writer("d", "prompts", step={"type": "import", "config": {}}) as w:
            w.write(rows)
    assert not store.version_dirs("d")
