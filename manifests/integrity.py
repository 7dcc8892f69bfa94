"""Tamper evidence: the publish log, shard containment, row counts and cached sha256.

**Publish log** (``<store>/publish.log``): one JSON line per published version, appended
(``O_APPEND`` + fsync, under a lock) right after the version's directory is renamed into
place: name, version, sha256 of the ``manifest.json`` bytes, fingerprint, time, and the
sha256 of the previous line (a chain: an edited or deleted line breaks every later one).
``verify`` holds each manifest against it: a manifest whose bytes changed (rows, paths,
hashes edited), a version missing from the log, or a logged version whose directory
vanished is an integrity error.  A crash between the rename and the append leaves a
version the log does not know; ``thinkforge verify --adopt`` records such versions after
a person has decided to trust them (it never overwrites an entry).

**Shard containment**: every ``files[].path`` resolves (symlinks followed) inside its
version directory; ``../../outside.parquet`` with a matching sha256 is refused.

**Row counts**: ``files[].rows`` equal each shard's Parquet metadata; ``rows`` is their sum.

**sha256 cache** (``<store>/.cache/sha256.json``): a file's hash is reused while its
(size, mtime_ns, ctime_ns, inode) are unchanged, so steps that read the same inputs again
do not rehash them.  Any write to the file changes its ctime (which a user cannot set
back), so a flipped bit is never hidden by the cache.  ``thinkforge verify`` rehashes
everything unless ``--cached`` is given.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import IntegrityError
from .manifest import sha256_file, utc_now

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
        """The latest entry per (name, version); the chain is checked on the way."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return out
        prev = _GENESIS
        for number, line in enumerate(raw.splitlines(), 1):
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
            out[key] = entry
            prev = manifest_digest(line)
        return out

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


class HashCache:
    """sha256 per file, reused while (size, mtime_ns, ctime_ns, inode) are unchanged."""

    def __init__(self, store):
        self.path = store.root / ".cache" / "sha256.json"
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

    def sha256(self, path: Path) -> str:
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        key = str(path)
        hit = self._load().get(key)
        if isinstance(hit, list) and len(hit) == 5 and hit[:4] == stamp:
            return hit[4]
        digest = sha256_file(path)
        after = path.stat()
        if [after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino] == stamp:
            self._load()[key] = [*stamp, digest]  # unchanged while it was read
            self._dirty = True
        return digest

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
