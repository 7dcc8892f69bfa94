"""DatasetStore: publishing, numbering, references, integrity, reuse."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import ConfigError, InputDataError, IntegrityError, NotFoundError


def prompt_rows(n, start=0, source="unit"):
    return [{"id": f"p{i}", "source": source, "category": "math",
             "input": [{"role": "user", "content": f"What is {i} + {i}?"}],
             "ground_truth": str(2 * i), "verifier": "math"} for i in range(start, start + n)]


def publish(store, name, rows, config=None):
    with store.writer(name, "prompts", step={"type": "test", "config": config or {"n": len(rows)}}) as w:
        w.write(rows)
    return w.manifest


def test_versions_number_up_and_manifest_has_design_fields(store):
    a = publish(store, "toy", prompt_rows(3))
    b = publish(store, "toy", prompt_rows(4))
    assert (a.version, b.version) == ("v1", "v2")
    raw = json.loads((store.version_dir(b) / "manifest.json").read_text())
    for field in ("manifest_version", "name", "version", "kind", "fingerprint", "created_at",
                  "created_by", "parents", "step", "schema", "files", "rows", "stats", "rejected"):
        assert field in raw, field
    assert raw["rows"] == 4 and raw["files"][0]["rows"] == 4
    assert raw["stats"]["by_category"] == {"math": 4}
    assert raw["created_by"]["tool"] == "thinkforge"


def test_resolve_references(store):
    a = publish(store, "toy", prompt_rows(3))
    b = publish(store, "toy", prompt_rows(5))
    assert store.resolve("toy").version == "v2"
    assert store.resolve("toy@latest").version == "v2"
    assert store.resolve("toy@v1").fingerprint == a.fingerprint
    assert store.resolve(f"toy@{b.fingerprint[:8]}").version == "v2"
    with pytest.raises(NotFoundError, match="no version v9"):
        store.resolve("toy@v9")
    with pytest.raises(NotFoundError, match="datasets in this store: toy"):
        store.resolve("nope")
    with pytest.raises(NotFoundError):
        store.resolve("toy@zzzz")


def test_same_step_same_bytes_reuses_the_version(store):
    a = publish(store, "toy", prompt_rows(3))
    again = publish(store, "toy", prompt_rows(3))
    assert again.version == a.version == "v1"
    assert [m.version for m in store.versions("toy")] == ["v1"]


def test_fingerprint_depends_on_content_only(store, tmp_path):
    other = DatasetStore(tmp_path / "other")
    assert publish(store, "toy", prompt_rows(3)).fingerprint == publish(other, "copy", prompt_rows(3)).fingerprint
    assert publish(store, "toy2", prompt_rows(4)).fingerprint != publish(other, "copy2", prompt_rows(3, 1)).fingerprint


def test_failed_step_publishes_nothing_and_leaves_no_staging(store):
    with pytest.raises(RuntimeError):
        with store.writer("toy", "prompts", step={"type": "test"}) as w:
            w.write(prompt_rows(2))
            raise RuntimeError("teacher crashed")
    assert store.names() == []
    assert list((store.root / ".staging").iterdir()) == []


def test_duplicate_keys_and_bad_enums_are_refused_at_publish(store):
    with pytest.raises(InputDataError, match="duplicate row key"):
        publish(store, "dup", prompt_rows(2) + prompt_rows(1))
    rows = prompt_rows(1)
    rows[0]["category"] = "poetry"
    with pytest.raises(InputDataError, match="category.*poetry"):
        publish(store, "enum", rows)
    assert store.names() == []


def test_unexpected_or_missing_columns_are_clear_errors(store):
    rows = prompt_rows(1)
    rows[0]["colour"] = "blue"
    with pytest.raises(InputDataError, match="unexpected column"):
        publish(store, "x", rows)
    with pytest.raises(InputDataError, match="required column 'input'"):
        with store.writer("x", "prompts", step={"type": "t"}) as w:
            w.write(pa.table({"id": ["a"], "source": ["s"], "category": ["math"], "verifier": ["none"]}))


def test_invalid_names_are_refused(store):
    for bad in ("Upper", "has space", "a@b", "../up", ""):
        with pytest.raises(ConfigError):
            store.writer(bad, "prompts", step={"type": "t"})


def test_verify_catches_a_tampered_shard_and_check_sizes_a_truncated_one(store):
    m = publish(store, "toy", prompt_rows(50))
    store.verify(m)
    shard = store.shard_paths(m)[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    shard.write_bytes(bytes(data))
    store.check_sizes(m)  # cheap check cannot see it...
    with pytest.raises(IntegrityError, match="sha256"):
        store.verify(m)  # ...the full one does
    shard.write_bytes(bytes(data[:-10]))
    with pytest.raises(IntegrityError, match="truncated"):
        store.check_sizes(m)


def test_empty_version_has_a_shard_with_the_schema(store):
    m = publish(store, "empty", [])
    assert m.rows == 0
    assert pq.read_schema(store.shard_paths(m)[0]).names[:3] == ["id", "source", "category"]


def test_rejected_rows_are_counted_by_reason(store):
    with store.writer("toy", "prompts", step={"type": "t"}) as w:
        w.write(prompt_rows(2))
        w.reject([{"id": "x", "reason": "too long"}, {"id": "y", "reason": "too long"}])
        w.reject([{"id": "z"}], reason="empty")
    assert w.manifest.rejected.rows == 3
    assert w.manifest.rejected.by_reason == {"empty": 1, "too long": 2}
    store.verify(w.manifest)


def test_lineage_is_recorded(store):
    parent = publish(store, "toy", prompt_rows(2))
    with store.writer("child", "prompts", step={"type": "t", "config": {"k": 1}}, parents=[parent]) as w:
        w.write(prompt_rows(1))
    assert [p.ref for p in w.manifest.parents] == ["toy@v1"]
    assert w.manifest.parents[0].fingerprint == parent.fingerprint
