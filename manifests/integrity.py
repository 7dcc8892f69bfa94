"""Tamper evidence: the publish log, shard containment, row counts and cached sha256.

**Publish log** (``<store>/publish.log``): one JSON line per published version, appended
(``O_APPEND`` + fsync, under a lock) right after the version's directory is renamed into
place: name, version, sha256 of the ``manifest.json`` bytes, fingerprint, time, and the
sha256 of the previous line (a chain: an edited or deleted line breaks every later one).
``verify`` holds each manifest against it: a manifest whose bytes changed (rows, paths,
hashes edited), a version missing from the log, or a logged version whose directory
vanished is an integrity error; so is a second entry for a logged (name, version).  The
chain's head (``head``) pinned outside the store detects a rewritten chain
(``check_head``; docs/integrity.md).  A crash between the rename and the append leaves a
version the log does not know; ``thinkforge verify --adopt`` records such versions after
a person has decided to trust them (it never overwrites an entry).

**Shard containment**: every ``files[].path`` resolves (symlinks followed) inside its
version directory; ``../../outside.parquet`` with a matching sha256 is refused.

**Row counts**: ``files[].rows`` equal each shard's Parquet metadata; ``rows`` is their sum.

**sha256 cache** (``<store>/.cache/sha256.json``): a file's hash is reused while its
(size, mtime_ns, ctime_ns, inode) are unchanged, so steps that read the same inputs again
do not rehash them.  Any write to the file changes its ctime (which a user cannot set
back), and each entry carries an HMAC under a secret outside the store, so neither a
flipped bit nor a forged entry is hidden by the cache.  ``thinkforge verify`` rehashes
everything unless ``--cached`` is given, and recomputes the rows' fingerprint
(``recompute_fingerprint``).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, IntegrityError
from .records import sha256_file, utc_now

if TYPE_CHECKING:
    from .manifest import Manifest

# ``store`` below is a thinkforge.manifests.store.StoreReader; not imported here: store imports this

LOG_NAME = "publish.log"
_GENESIS = "0" * 64


def manifest_digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


class PublishLog:
    def __init__(self, store):
        self.store = store
        self.path = store.root / LOG_NAME

    def append(self, manifest: Manifest, manifest_sha256: str) -> None:
        """Record a publish: called right after the version's rename, under the log's lock."""
        self.store.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            prev = self._last_line_digest()
            entry = {"name": manifest.name, "version": manifest.version,
                     "manifest_sha256": manifest_sha256, "fingerprint": manifest.fingerprint,
                     "time": utc_now(), "prev": prev}
            os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)  # closing drops the lock

    def _last_line_digest(self) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 4096))
                lines = f.read().splitlines()
        except FileNotFoundError:
            return _GENESIS
        return manifest_digest(lines[-1]) if lines else _GENESIS

    def exists(self) -> bool:
        return self.path.is_file()

    def entries(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The one entry per (name, version); the chain is checked on the way, and a second
        entry for a logged version is an integrity error (a publish never logs a version
        twice: an appended, correctly chained line must not replace the original)."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        prev = _GENESIS
        for number, line in enumerate(self._lines(), 1):
            try:
                entry = json.loads(line)
                key = (entry["name"], entry["version"])
                chained = entry["prev"] == prev
            except (ValueError, KeyError, TypeError):
                raise IntegrityError(f"{self.path}: line {number} is not a publish record",
                                     hint="the publish log was edited; restore it from a backup") from None
            if not chained:
                raise IntegrityError(f"{self.path}: line {number} does not follow line {number - 1} "
                                     "(a line was edited, removed or inserted)",
                                     hint="the publish log is append-only; restore it from a backup")
            if key in out:
                raise IntegrityError(
                    f"{self.path}: line {number} records {key[0]}@{key[1]} a second time (first at "
                    f"line {out[key]['_line']}): a version is published once",
                    hint="someone appended a record to replace a published version; restore the "
                         "log and the version from a backup")
            out[key] = {**entry, "_line": number}
            prev = manifest_digest(line)
        return out

    def _lines(self) -> list[bytes]:
        try:
            return self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []

    def logged_numbers(self, name: str) -> set[int]:
        """Version numbers of ``name`` the log holds (read leniently: a publish takes a number
        above them, so a version whose directory was deleted is never logged twice)."""
        out = set()
        for line in self._lines():
            try:
                entry = json.loads(line)
                if entry["name"] == name and str(entry["version"])[1:].isdigit():
                    out.add(int(entry["version"][1:]))
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def head(self) -> tuple[str, int]:
        """The chain's head (sha256 of the last line; 64 zeros for an empty log) and the
        number of entries, after checking the whole chain."""
        self.entries()
        lines = self._lines()
        return (manifest_digest(lines[-1]) if lines else _GENESIS), len(lines)

    def check_head(self, expected: str) -> int:
        """``expected`` (a head seen earlier, >= 12 hex characters) is still a line of the
        chain: the log only grew since.  Returns the entries appended after it."""
        expected = expected.strip().lower()
        if len(expected) < 12 or any(c not in "0123456789abcdef" for c in expected):
            raise ConfigError(f"--expect-head {expected!r}: give the hash `thinkforge log head` "
                              "printed (at least 12 hex characters)")
        self.entries()  # the chain itself holds
        lines = self._lines()
        if _GENESIS.startswith(expected):
            return len(lines)
        for number, line in enumerate(lines, 1):
            if manifest_digest(line).startswith(expected):
                return len(lines) - number
        raise IntegrityError(
            f"{self.path}: the head {expected[:16]}... you pinned is no longer in the publish "
            f"log ({len(lines)} entries): the log was rewritten since",
            hint="do not trust this store's versions; restore the log from a backup and compare")

    def check(self, manifest: Manifest, entries: dict | None = None) -> None:
        """The manifest's bytes are the ones that were published."""
        ref = manifest.ref
        if not self.exists():
            raise IntegrityError(
                f"{ref}: the store has no publish log ({self.path}), so its manifests cannot be "
                "checked", hint="a store written by an older thinkforge: if you trust its manifests, "
                                "record them with `thinkforge verify --all --adopt`")
        entries = self.entries() if entries is None else entries
        entry = entries.get((manifest.name, manifest.version))
        if entry is None:
            raise IntegrityError(f"{ref} is not in the publish log (copied in by hand, or its "
                                 "publish was interrupted)",
                                 hint=f"if you trust it: `thinkforge verify {ref} --adopt`")
        got = manifest_digest(self.store.manifest_path(manifest).read_bytes())
        if got != entry["manifest_sha256"]:
            raise IntegrityError(
                f"{ref}: manifest.json was changed after it was published (sha256 {got[:16]}..., "
                f"publish log says {entry['manifest_sha256'][:16]}...)",
                hint="versions are immutable: restore the manifest or rebuild the version")

    def vanished(self, entries: dict | None = None) -> list[dict[str, Any]]:
        """Logged versions whose manifest is gone."""
        entries = self.entries() if entries is None else entries
        return [e for (name, version), e in sorted(entries.items())
                if not (self.store.datasets_dir / name / version / "manifest.json").is_file()]

    def adopt(self, manifest: Manifest) -> bool:
        """Record a version the log does not know (never replaces an entry). True if added."""
        if (manifest.name, manifest.version) in self.entries():
            return False
        self.append(manifest, manifest_digest(self.store.manifest_path(manifest).read_bytes()))
        return True


def contained_path(version_dir: Path, rel: str, ref: str) -> Path:
    """``version_dir / rel``, refused unless it resolves (symlinks too) inside version_dir."""
    path = version_dir / rel
    if os.path.isabs(rel) or ".." in Path(rel).parts:
        raise IntegrityError(f"{ref}: shard path {rel!r} leaves the version directory",
                             hint="the manifest was edited; restore it or rebuild the version")
    try:
        resolved = path.resolve()
        inside = resolved.is_relative_to(version_dir.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise IntegrityError(f"{ref}: shard {rel} resolves outside the version directory "
                             "(a symlink?)", hint="versions hold their own bytes; restore the file")
    return path


def inside_store(datasets_dir: Path, path: Path, ref: str, rel: str) -> None:
    """A file a version reads (a selection reads its base's shards) is inside the store."""
    try:
        inside = Path(path).resolve().is_relative_to(Path(datasets_dir).resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise IntegrityError(f"{ref}: {rel} resolves outside the store's datasets directory",
                             hint="the manifest was edited or a file replaced by a link; restore it")


def check_row_counts(manifest: Manifest, paths: list[Path], entries: list) -> None:
    import pyarrow.parquet as pq

    for entry, path in zip(entries, paths, strict=True):
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # noqa: BLE001 - any unreadable footer is the same finding
            raise IntegrityError(f"{manifest.ref}: shard {entry.path} is not readable Parquet "
                                 f"({str(exc).splitlines()[0]})",
                                 hint="restore the file or rebuild the version") from None
        if rows != entry.rows:
            raise IntegrityError(f"{manifest.ref}: shard {entry.path} holds {rows} rows, the "
                                 f"manifest says {entry.rows}",
                                 hint="the manifest or the shard was changed after publishing")
    if manifest.rows != sum(f.rows for f in manifest.files):
        raise IntegrityError(f"{manifest.ref}: manifest says {manifest.rows} rows, its shards "
                             f"hold {sum(f.rows for f in manifest.files)}",
                             hint="the manifest was edited after publishing")


def file_stamp(st: os.stat_result) -> list[int]:
    """What the hash cache keys a file's sha256 on: a write, a replacement or a copy
    changes one of them (size, mtime, ctime, inode)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class HashCache:
    """sha256 per file, reused while (size, mtime_ns, ctime_ns, inode) are unchanged.

    The cache lives in the store, so whoever can change a shard can change the cache too:
    each entry carries an HMAC under a secret kept outside the store (``cache_secret``),
    and an entry without a valid one (written by hand, or copied from another machine) is
    never trusted: the file is rehashed.  Without a secret (no writable home directory)
    nothing is cached.
    """

    def __init__(self, store):
        self.path = store.root / ".cache" / "sha256.json"
        self._secret = cache_secret(store.root)
        self._data: dict[str, list] | None = None
        self._dirty = False

    def _load(self) -> dict[str, list]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text())
                if not isinstance(self._data, dict):
                    self._data = {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def _mac(self, key: str, stamp: list, digest: str) -> str:
        return hmac.new(self._secret, json.dumps([key, *stamp, digest]).encode(),
                        hashlib.sha256).hexdigest()

    def sha256(self, path: Path) -> str:
        stamp = file_stamp(path.stat())
        key = str(path)
        hit = self._load().get(key) if self._secret else None
        if isinstance(hit, list) and len(hit) == 6 and hit[:4] == stamp and isinstance(hit[4], str) \
                and isinstance(hit[5], str) and hmac.compare_digest(hit[5], self._mac(key, stamp, hit[4])):
            return hit[4]
        digest = sha256_file(path)
        self.remember(path, stamp, digest)  # kept only if unchanged while read
        return digest

    def remember(self, path: Path, stamp: list, digest: str) -> None:
        """Record ``digest`` for ``path``, hashed by the caller while the file had ``stamp``
        (``file_stamp``); kept only if the file still has it."""
        if self._secret and file_stamp(path.stat()) == stamp:
            key = str(path)
            self._load()[key] = [*stamp, digest, self._mac(key, stamp, digest)]
            self._dirty = True

    def save(self) -> None:
        """Best effort: a store that cannot be written just does not get faster."""
        if not self._dirty or self._data is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"sha256.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(self._data))
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            pass


def cache_secret(store_root: Path) -> bytes | None:
    """The per-user secret that signs the hash cache's entries: ``$XDG_CACHE_HOME/thinkforge/
    hash-cache.key`` (created 0600 on first use); None when it cannot be had, or when it
    would lie inside the store (then the store's writers could read it)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    path = base / "thinkforge" / "hash-cache.key"
    try:
        if path.resolve().is_relative_to(Path(store_root).resolve()):
            return None
        try:
            return bytes.fromhex(path.read_text().strip()) or None
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            secret = os.urandom(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret.hex())
            return secret
    except FileExistsError:  # another process created it first
        return cache_secret(store_root)
    except (OSError, ValueError):
        return None


def recompute_fingerprint(store, manifest: Manifest) -> None:
    """The fingerprint computed again from the version's rows (``selection.py``: one digest
    per row, in order, over every column), equal to the manifest's.  A shard and manifest
    edited together, with sha256s to match, still change the rows' digests.  A version
    published before row digests is checked through its shard hashes (its fingerprint)."""
    from .duck import connect, quote_ident, quote_literal
    from .selection import _digest_bytes, content_fingerprint, digest_expr, row_relation

    ref, schema = manifest.ref, manifest.schema_
    if manifest.digests is None and manifest.selection is None:
        h = hashlib.sha256(json.dumps(schema, sort_keys=True).encode())
        for f in manifest.files:
            h.update(f.sha256.encode())
        _same_fingerprint(manifest, h.hexdigest(), "its shards' sha256")
        return
    columns = [c["name"] for c in schema]
    if manifest.digest_scheme == 1:  # the older, linear row digest (selection.py)
        terms = [f"hash({quote_literal(c)}, {quote_ident(c)})" for c in columns]
        expr = terms[0] if terms else "0::UBIGINT"
        for term in terms[1:]:
            expr = f"xor({expr}, {term})"
    else:
        expr = digest_expr(columns)
    con = connect(memory_limit="512MiB")
    try:
        rows = _digest_bytes(con, f"SELECT {expr} AS d FROM {row_relation(store, manifest)}")
        _same_fingerprint(manifest, content_fingerprint(schema, rows), "its rows")
        if manifest.digests is not None and manifest.selection is None:
            path = contained_path(store.version_dir(manifest), manifest.digests.path, ref)
            stored = _digest_bytes(con, f"SELECT d FROM read_parquet({quote_literal(str(path))}, "
                                        "file_row_number=true) ORDER BY file_row_number")
            if stored != rows:
                raise IntegrityError(f"{ref}: {manifest.digests.path} does not hold the digests of "
                                     "the version's rows",
                                     hint="the version was changed after publishing; rebuild it")
    except IntegrityError:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable rows are the same finding
        raise IntegrityError(f"{ref}: its rows cannot be read ({str(exc).splitlines()[0]})",
                             hint="restore the files or rebuild the version") from None
    finally:
        con.close()


def _same_fingerprint(manifest: Manifest, got: str, source: str) -> None:
    if got != manifest.fingerprint:
        raise IntegrityError(
            f"{manifest.ref}: the fingerprint of {source} is {got[:16]}..., the manifest says "
            f"{manifest.fingerprint[:16]}... (the version was changed after publishing)",
            hint="versions are immutable: restore the original files or rebuild the version")
