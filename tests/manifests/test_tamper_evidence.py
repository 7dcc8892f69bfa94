"""Manifests cannot be forged unnoticed (publish log, containment, row counts) and steps
verify their inputs' sha256 with a per-file cache (issue 13 items 2 and 3)."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
import pytest
from thinkforge.manifests.errors import IntegrityError
from thinkforge.manifests.integrity import PublishLog

ROWS = pa.table({"id": [f"r{i}" for i in range(20)], "source": ["s"] * 20, "category": ["math"] * 20,
                 "input": [[{"role": "user", "content": f"question {i} " * 5}] for i in range(20)],
                 "verifier": ["none"] * 20})


def publish(store, name="toy", rows=ROWS):
    with store.writer(name, "prompts", step={"type": "t"}) as w:
        w.write(rows)
        w.reject(rows.slice(0, 2), reason="test")
    return store.resolve(name)


def edit_manifest(store, m, change):
    path = store.manifest_path(m)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return store.resolve(m.ref)


def test_publish_appends_a_chained_log_entry(store):
    m1 = publish(store)
    m2 = publish(store, rows=ROWS.slice(0, 5))
    lines = (store.root / "publish.log").read_text().splitlines()
    assert [json.loads(x)["version"] for x in lines] == ["v1", "v2"]
    entries = PublishLog(store).entries()
    assert entries[("toy", "v1")]["fingerprint"] == m1.fingerprint
    store.verify(m1)
    store.verify(m2)


def test_changing_rows_in_the_manifest_is_caught(store):
    m = publish(store)
    forged = edit_manifest(store, m, lambda d: d.update(rows=999))
    with pytest.raises(IntegrityError, match="changed after it was published"):
        store.verify(forged)


def test_row_counts_must_equal_the_parquet_metadata_even_without_the_log(store):
    from thinkforge.manifests.integrity import check_row_counts

    m = publish(store)
    forged = m.model_copy(deep=True)
    forged.files[0].rows += 1
    with pytest.raises(IntegrityError, match="rows"):
        check_row_counts(forged, store.shard_paths(m), forged.files)
    forged = m.model_copy(update={"rows": m.rows + 1})
    with pytest.raises(IntegrityError, match="rows"):
        check_row_counts(forged, store.shard_paths(m), forged.files)


def test_a_shard_path_leaving_the_version_is_refused(store, tmp_path):
    m = publish(store)
    outside = store.root.parent / "outside.parquet"
    shutil.copy(store.shard_paths(m)[0], outside)  # same bytes, same sha256
    forged = edit_manifest(store, m, lambda d: d["files"][0].update(path="../../../outside.parquet"))
    with pytest.raises(IntegrityError, match="leaves the version directory"):
        store.shard_paths(forged)
    with pytest.raises(IntegrityError):
        store.verify(forged)
    with pytest.raises(IntegrityError):
        store.check_sizes(forged)  # everyday reads refuse it too


def test_a_shard_replaced_by_a_symlink_out_of_the_store_is_refused(store):
    m = publish(store)
    shard = store.shard_paths(m)[0]
    outside = store.root.parent / "elsewhere.parquet"
    shutil.move(shard, outside)
    os.symlink(outside, shard)
    with pytest.raises(IntegrityError, match="outside the version directory"):
        store.check_sizes(m)


def test_verify_all_reports_a_vanished_version(cli_run, store):
    publish(store)
    m2 = publish(store, rows=ROWS.slice(0, 3))
    store.manifest_path(m2).unlink()
    result = cli_run("verify", "--all")
    assert result.exit_code == 4, result.output
    assert "VANISHED toy@v2" in result.stderr and "unsigned toy@v1" in result.stdout


def test_verify_cli_reports_a_forged_manifest(cli_run, store):
    m = publish(store)
    edit_manifest(store, m, lambda d: d.update(rows=1))
    result = cli_run("verify", "toy@v1")
    assert result.exit_code == 4 and "changed after it was published" in result.stderr


def test_an_edited_log_line_breaks_the_chain(store):
    publish(store)
    publish(store, rows=ROWS.slice(0, 3))
    log = store.root / "publish.log"
    lines = log.read_text().splitlines()
    first = json.loads(lines[0])
    first["manifest_sha256"] = "0" * 64
    log.write_text("\n".join([json.dumps(first, sort_keys=True), *lines[1:]]) + "\n")
    with pytest.raises(IntegrityError, match="does not follow|changed"):
        store.verify(store.resolve("toy@v2"))


def test_a_store_without_a_log_is_refused_until_adopted(cli_run, store):
    publish(store)
    (store.root / "publish.log").unlink()
    result = cli_run("verify", "--all")
    assert result.exit_code == 4 and "--adopt" in result.stderr
    adopted = cli_run("verify", "--all", "--adopt")
    assert adopted.exit_code == 0, adopted.output
    assert cli_run("verify", "--all").exit_code == 0


def test_a_pulled_copy_has_its_own_log_and_verifies(store, tmp_path):
    from thinkforge.curation.export import pull_version
    from thinkforge.manifests import DatasetStore

    m = publish(store)
    pull_version(store, m.ref, tmp_path / "copy")
    copy = DatasetStore(tmp_path / "copy")
    copy.verify(copy.resolve(m.ref), use_cache=False)


# -- item 3: steps verify sha256 before reading, with a cache -----------------------------

def flip_a_bit_keeping_size_and_mtime(path):
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back: ctime still moves


def test_a_filter_refuses_a_flipped_bit_and_publishes_nothing(cli_run, store):
    m = publish(store)
    store.verify(m)  # hashes cached
    flip_a_bit_keeping_size_and_mtime(store.shard_paths(m)[0])
    result = cli_run("filter", "dedup", "toy", "--name", "toy-dedup")
    assert result.exit_code == 4, result.output
    assert "sha256" in result.stderr and "Traceback" not in result.output
    assert not (store.datasets_dir / "toy-dedup").exists()


def _copy_step(store, data, name, body_extra, resources=None):
    """A filter step that keeps every row, running ``body_extra(ctx)`` first."""
    from thinkforge.filters.base import StepConfig, row_order, run_step, source
    from thinkforge.manifests.schemas import schema_for

    def body(ctx):
        body_extra(ctx)
        ctx.con.execute(f"CREATE TEMP VIEW judged AS SELECT *, NULL::VARCHAR AS reason "
                        f"FROM {source(store, data)}")
        ctx.keep_reject("judged", schema_for(data.kind).names, order=row_order(data))

    return run_step(store, name=name, kind=data.kind, step_type="filter.copy", config=StepConfig(),
                    inputs=[data], body=body, resources=resources)


@pytest.mark.parametrize("fails", [False, True])
def test_a_step_hashing_while_it_runs_publishes_nothing_from_a_flipped_bit(store, fails):
    """The inputs' sha256 runs beside the step (filters/verifying.py): a step that ran to its
    end is refused at its publish; one that failed (as DuckDB may on a corrupt page) reports
    the sha256 mismatch, its own error as the cause; nothing is published or left staged."""
    m = publish(store)
    store.verify(m)  # hashes cached
    flip_a_bit_keeping_size_and_mtime(store.shard_paths(m)[0])
    ran = []

    def body_extra(ctx):
        ran.append(True)
        if fails:
            raise RuntimeError("the step met a corrupt page")

    with pytest.raises(IntegrityError, match="sha256") as caught:
        _copy_step(store, m, "toy-copy", body_extra)
    assert ran == [True]
    assert isinstance(caught.value.__cause__, RuntimeError) == fails
    assert not (store.datasets_dir / "toy-copy").exists()
    assert not [p for p in (store.root / ".staging").glob("*") if p.is_dir()
                and not p.name.startswith("spill-")]
    ok = _copy_step(store, publish(store, name="fine"), "fine-copy", lambda ctx: None)
    assert ok.rows == ROWS.num_rows  # an intact input: the same step publishes


def test_a_one_thread_step_hashes_before_it_runs(store):
    from thinkforge.filters.base import Resources

    m = publish(store)
    store.verify(m)
    flip_a_bit_keeping_size_and_mtime(store.shard_paths(m)[0])
    ran = []
    with pytest.raises(IntegrityError, match="sha256"):
        _copy_step(store, m, "toy-copy", ran.append, resources=Resources(threads=1))
    assert ran == []  # a single-thread step starts no hashing thread: it checks first


def test_the_hash_cache_skips_unchanged_files_and_rehashes_changed_ones(store, monkeypatch):
    import thinkforge.manifests.integrity as integrity

    m = publish(store)
    calls = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    store.verify(m)
    assert calls == []  # the publish hashed every file it wrote: the cache has them
    copy = store.root.parent / "copy"
    shutil.copytree(store.root, copy)  # new inodes: every file is hashed once
    from thinkforge.manifests import DatasetStore

    copied = DatasetStore(copy)
    copied.verify(copied.resolve(m.ref))
    first = len(calls)
    assert first == len(store.version_files(m))  # shards, digests, rejected shards
    copied.verify(copied.resolve(m.ref))
    store.verify(m)
    assert len(calls) == first  # nothing rehashed
    flip_a_bit_keeping_size_and_mtime(store.shard_paths(m)[0])
    with pytest.raises(IntegrityError, match="sha256"):
        store.verify(m)
    assert len(calls) == first + 1  # exactly the changed file
    store.verify.__func__  # noqa: B018 - the method others call
    assert store.verify_cached.__func__ is store.verify.__func__


def test_verify_command_rehashes_unless_cached(cli_run, store, monkeypatch):
    m = publish(store)
    store.verify(m)  # cache filled
    import thinkforge.manifests.store as store_module

    calls = []
    real = store_module.sha256_file
    monkeypatch.setattr(store_module, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    assert cli_run("verify", "toy").exit_code == 0
    assert len(calls) == len(store.version_files(m))


def _publish_some(root: str, name: str) -> None:
    from thinkforge.manifests import DatasetStore

    store = DatasetStore(root)
    for i in range(3):
        with store.writer(name, "prompts", step={"type": "t", "config": {"i": i}}) as w:
            w.write(ROWS.slice(0, i + 1))


def test_racing_publishers_keep_one_unbroken_log(store):
    import multiprocessing

    store.root.mkdir(parents=True)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_publish_some, args=(str(store.root), name)) for name in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    entries = PublishLog(store).entries()  # the chain holds: no interleaved or lost line
    assert len(entries) == 9
    for m in store.manifests():
        store.verify(m, use_cache=False, log_entries=entries)
