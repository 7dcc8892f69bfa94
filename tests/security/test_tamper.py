"""Issue 24 item 1: tamper evidence that holds against someone who can write the store."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest
from thinkforge.manifests.errors import IntegrityError
from thinkforge.manifests.integrity import PublishLog, manifest_digest

from .conftest import ROWS, chained, log_lines, publish


def forge_rows(store, m, start, stop):
    """Replace the version's shard with some of its rows and rewrite its manifest so that
    every size, sha256 and row count matches (the fingerprint is left as it was)."""
    shard = store.shard_paths(m)[0]
    rows = pq.read_table(shard).slice(start, stop - start)
    pq.write_table(rows, shard, compression="zstd")
    path = store.manifest_path(m)
    data = json.loads(path.read_text())
    from thinkforge.manifests.manifest import sha256_file

    data["files"][0].update(bytes=shard.stat().st_size, sha256=sha256_file(shard), rows=rows.num_rows)
    data["rows"] = rows.num_rows
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path.read_bytes()


def test_a_second_log_entry_for_a_published_version_is_an_integrity_error(cli_run, store):
    m = publish(store)
    forged = forge_rows(store, m, 0, 3)
    entry = json.loads(log_lines(store)[-1])
    entry.update(manifest_sha256=manifest_digest(forged), prev=manifest_digest(log_lines(store)[-1].encode()))
    with open(store.root / "publish.log", "a") as f:  # appended, correctly chained
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    with pytest.raises(IntegrityError, match="a second time"):
        store.verify(store.resolve("toy"))
    for args in (("verify", "--all"), ("export", "toy", "--format", "trl-grpo", "--out",
                                       str(store.root.parent / "out"))):
        result = cli_run(*args)
        assert result.exit_code == 4, result.output
        assert "a second time" in result.stderr and "Traceback" not in result.output


def test_a_deleted_versions_number_is_never_logged_twice(store):
    publish(store)
    m2 = publish(store, rows=ROWS.slice(0, 4))
    shutil.rmtree(store.version_dir(m2))
    m3 = publish(store, rows=ROWS.slice(0, 5))
    assert m3.version == "v3"
    assert len(PublishLog(store).entries()) == 3


def test_verify_recomputes_the_fingerprint_from_the_rows(cli_run, store):
    m = publish(store)
    forged = forge_rows(store, m, 2, 5)
    entries = [json.loads(line) for line in log_lines(store)]
    entries[0]["manifest_sha256"] = manifest_digest(forged)
    (store.root / "publish.log").write_text(chained(entries))  # the whole chain rewritten
    store.verify(store.resolve("toy"))  # every byte-level check passes ...
    with pytest.raises(IntegrityError, match="fingerprint of its rows"):
        store.verify(store.resolve("toy"), rows=True)  # ... the rows do not
    result = cli_run("verify", "toy")
    assert result.exit_code == 4 and "fingerprint of its rows" in result.stderr


def test_recomputed_fingerprints_match_for_every_kind_and_for_selections(cli_run, store, versions):
    dup = publish(store, name="plain")
    assert cli_run("filter", "dedup", "toy-sft", "--name", "toy-sft-d").exit_code == 0
    assert store.resolve("toy-sft-d").selection is not None
    for m in [*versions.values(), dup, store.resolve("toy-sft-d")]:
        store.verify(m, rows=True)
    result = cli_run("verify", "--all")
    assert result.exit_code == 0, result.output


def test_a_version_directory_copied_by_hand_is_reported_not_listed_twice(cli_run, store):
    m = publish(store)
    shutil.copytree(store.version_dir(m), store.datasets_dir / "toy" / "v2", symlinks=True)
    result = cli_run("verify", "--all")
    assert result.exit_code == 4
    assert "MISPLACED datasets/toy/v2 holds the manifest of toy@v1" in result.stderr
    assert result.stdout.count("toy@v1") == 1
    rebuilt = cli_run("catalog", "rebuild")
    assert rebuilt.exit_code == 4 and "Traceback" not in rebuilt.output
    assert "datasets/toy/v2 holds the manifest of toy@v1" in rebuilt.stderr
    shown = cli_run("show", "toy@v2")
    assert shown.exit_code == 4 and "copied or renamed by hand" in shown.stderr
    assert cli_run("sql", "SELECT count(*) AS n FROM \"toy@v1\"").exit_code == 0


def test_log_head_pins_the_chain_and_a_rewrite_is_caught(cli_run, store):
    publish(store)
    head = cli_run("log", "head").stdout.strip()
    assert len(head) == 64 and head == manifest_digest(log_lines(store)[-1].encode())
    publish(store, rows=ROWS.slice(0, 4))  # the log grows: the pinned head stays in it
    assert cli_run("verify", "--all", "--expect-head", head).exit_code == 0
    entries = [json.loads(line) for line in log_lines(store)]
    entries[0]["time"] = "2020-01-01T00:00:00+00:00"
    (store.root / "publish.log").write_text(chained(entries))  # a consistent, rewritten chain
    assert cli_run("verify", "--all").exit_code == 0  # nothing inside the store tells ...
    # ... the head pinned outside it does
    result = cli_run("verify", "--expect-head", head[:16])
    assert result.exit_code == 4 and "no longer in the publish log" in result.stderr
    bad = cli_run("verify", "--all", "--expect-head", "xyz")
    assert bad.exit_code == 8


def test_keys_init_signs_publishes_and_trusted_key_refuses_others(cli_run, store, key, tmp_path,
                                                                  monkeypatch):
    private, public, kid = key
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    assert not private.resolve().is_relative_to(store.root)
    m = publish(store)
    assert (store.version_dir(m) / "manifest.sig").is_file()
    ok = cli_run("verify", "--all", "--trusted-key", str(public))
    assert ok.exit_code == 0 and "ok toy@v1" in ok.stdout and kid in ok.stdout
    # another key (an attacker's) signs a new version: refused under --trusted-key
    monkeypatch.setenv("THINKFORGE_KEY", str(tmp_path / "other.pem"))
    from thinkforge.manifests.signing import init_key

    init_key()
    publish(store, rows=ROWS.slice(0, 3))
    result = cli_run("verify", "--all", "--trusted-key", str(public))
    assert result.exit_code == 4 and "not by the trusted key" in result.stderr
    pulled = cli_run("pull", "toy@v2", "--to", str(tmp_path / "copy"), "--trusted-key", str(public))
    assert pulled.exit_code == 4 and not (tmp_path / "copy" / "datasets" / "toy" / "v2").exists()
    assert cli_run("pull", "toy@v1", "--to", str(tmp_path / "copy"), "--trusted-key",
                   public.read_text()).exit_code == 0


def test_a_signature_does_not_survive_an_edit(cli_run, store, key):
    m = publish(store)
    sig = store.version_dir(m) / "manifest.sig"
    body = json.loads(sig.read_text())
    body["signature"] = ("00" if body["signature"][:2] != "00" else "11") + body["signature"][2:]
    sig.write_text(json.dumps(body))
    result = cli_run("verify", "toy")
    assert result.exit_code == 4 and "does not sign this manifest" in result.stderr
    sig.unlink()
    result = cli_run("verify", "toy", "--trusted-key", str(key[1]))
    assert result.exit_code == 4 and "is not signed" in result.stderr


def test_a_key_inside_the_store_is_refused(cli_run, store, monkeypatch):
    publish(store)
    monkeypatch.setenv("THINKFORGE_KEY", str(store.root / "key.pem"))
    result = cli_run("keys", "init")
    assert result.exit_code == 8 and "inside the store" in result.stderr
    assert not (store.root / "key.pem").exists()


def test_an_unsigned_store_is_not_called_ok(cli_run, store):
    publish(store)
    result = cli_run("verify", "--all")
    assert result.exit_code == 0
    assert result.stdout.startswith("unsigned toy@v1") and "ok " not in result.stdout
    assert "unsigned" in result.stderr and "keys init" in result.stderr


# -- the sha256 cache ------------------------------------------------------------------------

def poison_cache(store, shard, digest):
    """Write the cache entry a forger would: the changed file's stamp with the old sha256."""
    cache = store.root / ".cache" / "sha256.json"
    data = json.loads(cache.read_text())
    st = shard.stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    old = data[str(shard)]
    data[str(shard)] = [*stamp, digest, *old[5:]]  # the old HMAC, or none
    cache.write_text(json.dumps(data))


def flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["export", "filter", "materialize"])
def test_a_poisoned_hash_cache_cannot_hide_a_changed_shard(cli_run, store, command):
    m = publish(store)
    store.verify(m)  # the cache holds the true sha256
    shard = store.shard_paths(m)[0]
    flip(shard)
    poison_cache(store, shard, m.files[0].sha256)
    with pytest.raises(IntegrityError, match="sha256"):
        store.verify(m)
    args = {"export": ("export", "toy", "--format", "trl-grpo", "--out", str(store.root.parent / "x")),
            "filter": ("filter", "dedup", "toy", "--name", "toy-d"),
            "materialize": ("materialize", "toy", "--name", "toy-m")}[command]
    result = cli_run(*args)
    assert result.exit_code == 4, result.output
    assert "sha256" in result.stderr and "Traceback" not in result.output


def test_the_cache_secret_lives_outside_the_store(store, tmp_path, monkeypatch):
    from thinkforge.manifests.integrity import cache_secret

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    secret = cache_secret(store.root)
    key = tmp_path / "cache" / "thinkforge" / "hash-cache.key"
    assert secret and len(secret) == 32 and cache_secret(store.root) == secret
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("XDG_CACHE_HOME", str(store.root / ".cache"))  # inside the store: refused
    assert cache_secret(store.root) is None
    m = publish(store)
    store.verify(m)  # without a secret nothing is cached, and nothing breaks
    assert not (store.root / ".cache" / "sha256.json").exists() or \
        json.loads((store.root / ".cache" / "sha256.json").read_text()) == {}
    assert os.environ["XDG_CACHE_HOME"].startswith(str(store.root))


def test_a_shard_damaged_near_its_footer_is_a_one_line_error_in_sql(cli_run, store):
    m = publish(store)
    shard = store.shard_paths(m)[0]
    data = bytearray(shard.read_bytes())
    data[len(data) - 20] ^= 0xFF  # inside the footer's thrift metadata; size unchanged
    shard.write_bytes(bytes(data))
    result = cli_run("sql", "SELECT count(*) FROM toy")
    assert result.exit_code == 4, result.output
    assert "not readable Parquet" in result.stderr and "Traceback" not in result.output


def test_trust_pinned_in_the_environment_holds_for_exports_and_steps(cli_run, store, key,
                                                                     monkeypatch, tmp_path):
    publish(store)  # signed by `key`
    head = cli_run("log", "head").stdout.strip()
    monkeypatch.setenv("THINKFORGE_TRUSTED_KEY", str(key[1]))
    monkeypatch.setenv("THINKFORGE_EXPECT_HEAD", head)
    out = tmp_path / "export"
    assert cli_run("export", "toy", "--format", "trl-grpo", "--out", str(out)).exit_code == 0
    monkeypatch.setenv("THINKFORGE_KEY", str(tmp_path / "none.pem"))  # no key: unsigned publish
    publish(store, name="other")
    result = cli_run("filter", "dedup", "other", "--name", "other-d")
    assert result.exit_code == 4 and "not signed" in result.stderr, result.output
    entries = [json.loads(line) for line in log_lines(store)]
    entries[0]["time"] = "2020-01-01T00:00:00+00:00"
    (store.root / "publish.log").write_text(chained(entries))  # the chain rewritten
    result = cli_run("export", "toy", "--format", "trl-grpo", "--out", str(tmp_path / "again"))
    assert result.exit_code == 4 and "no longer in the publish log" in result.stderr
