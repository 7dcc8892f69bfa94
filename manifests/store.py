"""The store's layout and reads (``StoreReader``): immutable, checksummed dataset versions
on a local directory (docs/concepts.md).  Writing and publishing live in ``writer.py``, whose
``DatasetStore`` is this reader plus ``writer()``; this module imports neither it nor the
catalog.

A version is written under ``<store>/.staging/<uuid>/`` and published by one atomic
``rename`` to ``<store>/datasets/<name>/v<N>``.  Readers never see half a version; two
writers racing for the same number both end as distinct versions (the loser of a rename
takes the next number).  ``manifest.json`` is the source of truth; the DuckDB catalog is
derived from the manifests and rebuilt after every publish.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, IntegrityError, NotFoundError
from .records import read_manifest, sha256_file

if TYPE_CHECKING:  # the pydantic models load when a manifest is read for writing or verifying
    from .manifest import Manifest, ParentRef, Step

# always used with fullmatch: `$` would also match before a trailing newline
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
VERSION_RE = re.compile(r"v([1-9][0-9]*)")
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# the catalog's own tables and views: a dataset of one of these names would replace them
RESERVED_NAMES = frozenset({"versions", "lineage", "catalog_meta", "runs", "information_schema",
                            "pg_catalog", "main", "temp", "memory", "system"})
DEFAULT_STORE = "./forge-store"
ROW_GROUP_BYTES = 128 << 20
# and at most DuckDB's own row group: readers and writers split work by row group, so a
# version of 1M small rows in one group would be scanned by one thread
ROW_GROUP_ROWS = 122_880
SHARD_BYTES = 1 << 30


def validate_name(name: str) -> str:
    """A dataset name: one path component of [a-z0-9_.-], not a catalog table's name."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > 128:
        raise ConfigError(
            f"invalid dataset name {name!r}: names match [a-z0-9][a-z0-9_.-]* (lower case, "
            "no spaces, no '/', no '@', at most 128 characters)", hint="for example --name gsm8k-sft")
    if name in RESERVED_NAMES:
        raise ConfigError(f"dataset name {name!r} is reserved: the catalog has a table or schema "
                          "of that name", hint=f"for example --name {name}-data")
    return name


def validate_run_id(run_id: str) -> str:
    """A run id: one directory name under <store>/runs/ (no '/', no '..', not absolute)."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id) or len(run_id) > 200:
        raise ConfigError(f"invalid run id {run_id!r}: run ids match [A-Za-z0-9][A-Za-z0-9_.-]* "
                          "(one directory name under <store>/runs/)", hint="for example --run-id sft-try-2")
    return run_id


class StoreReader:
    def __init__(self, root: str | os.PathLike | None = None):
        chosen = root or os.environ.get("THINKFORGE_STORE") or DEFAULT_STORE
        if "://" in str(chosen):
            raise ConfigError(f"store {chosen!r}: only local directories are supported so far",
                              hint="use a local path, e.g. --store ./forge-store")
        self.root = Path(chosen).expanduser().resolve()

    # -- layout ---------------------------------------------------------------------------
    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def version_dir(self, manifest: Manifest) -> Path:
        return self.datasets_dir / manifest.name / manifest.version

    def manifest_path(self, manifest: Manifest) -> Path:
        return self.version_dir(manifest) / "manifest.json"

    def shard_paths(self, manifest: Manifest) -> list[Path]:
        """The version's own data shards.  A selection has none: read its rows through
        ``thinkforge.manifests.selection.row_relation`` (never its base's shards as they are)."""
        if manifest.selection is not None:
            raise IntegrityError(
                f"{manifest.ref} is a selection over {manifest.selection.base.ref}: it has no "
                "shards of its own", hint="read it with thinkforge.manifests.selection.row_relation, or "
                f"`thinkforge materialize {manifest.ref} --name NAME` for a plain copy")
        from .integrity import contained_path

        base = self.version_dir(manifest)
        return [contained_path(base, f.path, manifest.ref) for f in manifest.files]

    def rejected_paths(self, manifest: Manifest) -> list[Path]:
        from .integrity import contained_path

        base = self.version_dir(manifest)
        return [contained_path(base, f.path, manifest.ref) for f in manifest.rejected.files]

    # -- listing and references ------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.datasets_dir.is_dir():
            return []
        return sorted(p.name for p in self.datasets_dir.iterdir()
                      if p.is_dir() and NAME_RE.fullmatch(p.name) and self.version_dirs(p.name))

    def version_dirs(self, name: str) -> list[tuple[int, Path]]:
        base = self.datasets_dir / name
        if not base.is_dir():
            return []
        out = []
        for p in base.iterdir():
            m = VERSION_RE.fullmatch(p.name)
            if m and (p / "manifest.json").is_file():
                out.append((int(m.group(1)), p))
        return sorted(out)

    def versions(self, name: str, *, light: bool = False) -> list[Manifest]:
        """The versions of ``name`` whose manifest is the one of their directory (a copy by
        hand, ``cp -a x/v1 x/v2``, is left out: ``misplaced`` names it).  ``light``: read-only
        ``records.ManifestRecord``s, read without pydantic (the query path)."""
        out = []
        for _, p in self.version_dirs(name):
            try:
                out.append(self._load_at(p, light=light))
            except IntegrityError:
                continue
        return out

    def _load_at(self, directory: Path, *, light: bool = False) -> Manifest:
        """The manifest of a version directory, refused unless it names that directory."""
        if light:
            m = _read_light(directory / "manifest.json")
        else:
            from .manifest import Manifest

            m = Manifest.load(directory / "manifest.json")
        if (m.name, m.version) != (directory.parent.name, directory.name):
            raise IntegrityError(
                f"datasets/{directory.parent.name}/{directory.name} holds the manifest of {m.ref} "
                "(a version directory copied or renamed by hand)",
                hint=f"only a publish makes versions: remove {directory} or restore the original")
        return m

    def misplaced(self) -> list[str]:
        """One line per version directory whose manifest names another version."""
        out = []
        for name in self.names():
            for _, p in self.version_dirs(name):
                try:
                    self._load_at(p)
                except IntegrityError as exc:
                    out.append(str(exc).split("\n")[0])
        return out

    def manifests(self, *, light: bool = False) -> Iterator[Manifest]:
        for name in self.names():
            yield from self.versions(name, light=light)

    def full_manifest(self, manifest: Manifest) -> Manifest:
        """The pydantic ``Manifest`` of a version read ``light`` (for ``verify``)."""
        return self._load_at(self.version_dir(manifest))

    def version_keys(self) -> list[str]:
        """``name/vN`` of every published version, from directory names only (cheap: each
        dataset directory listed once; a publish refreshing the catalog calls this)."""
        if not self.datasets_dir.is_dir():
            return []
        return [f"{p.name}/v{num}" for p in sorted(self.datasets_dir.iterdir())
                if p.is_dir() and NAME_RE.fullmatch(p.name)
                for num, _ in self.version_dirs(p.name)]

    def resolve(self, ref: str) -> Manifest:
        """``name``, ``name@latest``, ``name@v3`` or ``name@<fingerprint prefix>``."""
        name, at, selector = ref.partition("@")
        if at and not selector:
            raise NotFoundError(f"{ref!r} is not a dataset reference: nothing follows '@'",
                                hint=f"use {name}, {name}@latest, {name}@v3 or {name}@<fingerprint prefix>")
        selector = selector or "latest"
        if not NAME_RE.fullmatch(name):
            raise NotFoundError(f"{ref!r} is not a dataset reference",
                                hint="use name, name@latest, name@v3 or name@<fingerprint prefix>")
        dirs = self.version_dirs(name)
        if not dirs:
            known = ", ".join(self.names()) or "none yet"
            raise NotFoundError(f"no dataset named {name!r} in store {self.root}",
                                hint=f"datasets in this store: {known}")
        if selector == "latest":
            return self._load_at(dirs[-1][1])
        if m := VERSION_RE.fullmatch(selector):
            for num, path in dirs:
                if num == int(m.group(1)):
                    return self._load_at(path)
            raise NotFoundError(f"{name} has no version {selector}",
                                hint=f"versions: {', '.join(f'v{n}' for n, _ in dirs)}")
        if re.fullmatch(r"[0-9a-f]{4,64}", selector):
            hits = [m for m in self.versions(name) if m.fingerprint.startswith(selector)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise NotFoundError(f"fingerprint prefix {selector!r} of {name} is ambiguous: "
                                    + ", ".join(h.version for h in hits),
                                    hint="give more characters of the fingerprint")
        raise NotFoundError(f"{ref!r}: no version of {name} matches {selector!r}",
                            hint="use latest, v<N>, or at least 4 hex characters of a fingerprint")

    # -- integrity -------------------------------------------------------------------------
    def version_files(self, manifest: Manifest, rejected: bool = True) -> list[tuple[str, object, Path]]:
        """(what, FileEntry, path) of every file the version's rows are read from (for a
        selection: its selection file, the base shards it uses, the base's row digests),
        then its rejected rows."""
        from .integrity import contained_path, inside_store
        from .selection import needed_files

        out = needed_files(self, manifest)
        for _, entry, path in out:  # a selection names its base's shards: all inside the store
            inside_store(self.datasets_dir, path, manifest.ref, entry.path)
        if rejected:
            out += [("rejected shard", f, p) for f, p in
                    zip(manifest.rejected.files, self.rejected_paths(manifest), strict=True)]
            if manifest.selection is not None and manifest.selection.rejected is not None:
                out.append(("rejected selection", manifest.selection.rejected,
                            contained_path(self.version_dir(manifest),
                                           manifest.selection.rejected.path, manifest.ref)))
        return out

    def check_sizes(self, manifest: Manifest) -> None:
        """Cheap everyday check: every file the rows are read from exists and has the size
        the manifest says (for a selection: the base shards it needs too)."""
        for what, entry, path in self.version_files(manifest, rejected=False):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise _missing(manifest, what, entry, path) from None
            if size != entry.bytes:
                raise IntegrityError(
                    f"{manifest.ref}: {what} {entry.path} has {size} bytes, manifest says "
                    f"{entry.bytes} (truncated or modified)",
                    hint=f"run `thinkforge verify {manifest.ref}`; restore or rebuild the version")

    def verify(self, manifest: Manifest, *, use_cache: bool = True,
               log_entries: dict | None = None, rows: bool = False,
               trusted_keys: list[bytes] | None = None) -> str | None:
        """Full check, run whenever bytes leave the store or feed a step (filters, exports,
        pulls, trainers): the manifest against the publish log and its signature, file
        paths inside the store, sizes and sha256 of every file (for a selection: the
        selection files and the base shards it reads), row counts against the Parquet
        metadata; with ``rows``, the fingerprint recomputed from the rows themselves.

        sha256 comes from the per-file cache (``integrity.HashCache``) unless ``use_cache``
        is False; a file whose size, mtime, ctime or inode changed is always rehashed.
        Returns the id of the key that signed the version (None: unsigned); with
        ``trusted_keys`` a version not signed by one of them is an integrity error.
        It is ``verify_records`` then ``verify_bytes``.
        """
        signer = self.verify_records(manifest, log_entries=log_entries, trusted_keys=trusted_keys)
        self.verify_bytes(manifest, use_cache=use_cache, rows=rows)
        return signer

    def verify_records(self, manifest: Manifest, *, log_entries: dict | None = None,
                       trusted_keys: list[bytes] | None = None) -> str | None:
        """``verify``'s cheap half (no file is read): the manifest against the publish log and
        its signature, file paths inside the store and their sizes; returns the signer."""
        from .integrity import PublishLog, manifest_digest
        from .signing import check_signature, env_expect_head, env_trusted_keys

        self._load_at(self.version_dir(manifest))  # the directory is the manifest's own
        if trusted_keys is None:  # pinned for every step, export and trainer of the process
            trusted_keys = env_trusted_keys()
        if (head := env_expect_head()) is not None:
            PublishLog(self).check_head(head)
        PublishLog(self).check(manifest, log_entries)
        signer = check_signature(self.version_dir(manifest), manifest,
                                 manifest_digest(self.manifest_path(manifest).read_bytes()), trusted_keys)
        self.check_sizes(manifest)
        return signer

    def verify_bytes(self, manifest: Manifest, *, use_cache: bool = True, rows: bool = False) -> None:
        """``verify``'s reading half, after ``verify_records``: sha256 of every file, row counts
        against the Parquet metadata, with ``rows`` the fingerprint from the rows."""
        from .integrity import HashCache, check_row_counts, recompute_fingerprint

        cache = HashCache(self) if use_cache else None
        try:
            for what, entry, path in self.version_files(manifest):
                try:
                    digest = cache.sha256(path) if cache else sha256_file(path)
                except FileNotFoundError:
                    raise _missing(manifest, what, entry, path) from None
                if digest != entry.sha256:
                    raise IntegrityError(
                        f"{manifest.ref}: sha256 of {what} {entry.path} is {digest[:16]}..., manifest "
                        f"says {entry.sha256[:16]}... (the file was modified after publishing)",
                        hint="versions are immutable: restore the original file or rebuild the version")
        finally:
            if cache:
                cache.save()
        if manifest.selection is None:
            check_row_counts(manifest, self.shard_paths(manifest), manifest.files)
        if rows:
            recompute_fingerprint(self, manifest)

    # the name trainers look for (trainers/data.py): verify() is the cached check already
    verify_cached = verify

    def record_copy(self, manifest: Manifest) -> None:
        """Log a version copied in whole from a verified store (``thinkforge pull``)."""
        from .integrity import PublishLog

        PublishLog(self).adopt(manifest)

    def find_reusable(self, name: str, step: Step, parents: list[ParentRef]) -> Manifest | None:
        """A version of ``name`` built by the same step config from the same inputs, if any."""
        want = ([p.fingerprint for p in parents], step.model_dump())
        for m in reversed(self.versions(name)):
            if ([p.fingerprint for p in m.parents], m.step.model_dump()) == want:
                return m
        return None

    def remove_staging(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)


_LIGHT: dict[str, tuple[tuple[int, int, int], object]] = {}


def _read_light(path: Path):
    """``read_manifest``, cached per process while the file's (inode, size, mtime) stay the
    same: a version's manifest never changes once published, so a process that queries
    again (the web console, notebooks) does not parse it again."""
    st = path.stat()
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _LIGHT.get(str(path))
    if hit is not None and hit[0] == key:
        return hit[1]
    m = read_manifest(path)
    _LIGHT[str(path)] = (key, m)
    return m


def _missing(manifest: Manifest, what: str, entry, path: Path) -> IntegrityError:
    """The error for a file a version reads that is not on disk (size check and verify)."""
    return IntegrityError(f"{manifest.ref}: {what} {entry.path} is missing ({path})",
                          hint="the version is damaged; restore the file or rebuild it")
