"""VersionWriter: stage shards, check them, compute stats and publish one version atomically.

Use it as a context manager; leaving the block with an exception removes the staging
directory, so a failed step leaves no debris and publishes nothing::

    with store.writer("gsm8k", "prompts", step={"type": "import", "config": {...}}) as w:
        w.write(table)                       # pyarrow Table / RecordBatch / list of dicts
        w.reject(bad_rows)                   # rows with a `reason` column
    print(w.manifest.ref)

Filters that write Parquet with DuckDB ask for ``w.new_shard_path()`` and COPY into it.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .cleanup import OWNER, claim, reclaim
from .conform import conform, types_match
from .duck import connect, parquet_source, quote_ident
from .errors import ConflictError, InputDataError
from .integrity import PublishLog, file_stamp, manifest_digest
from .manifest import (
    FileEntry,
    Manifest,
    ParentRef,
    Rejected,
    Selection,
    Step,
    created_by,
    schema_to_json,
    sha256_file,
    utc_now,
)
from .schemas import ENUMS, ROW_KEYS, schema_for
from .selection import (
    DIGEST_SCHEME,
    DIGESTS_FILE,
    REJECTED_SELECTION_FILE,
    SELECTION_FILE,
    chars_relation,
    content_fingerprint,
    gathers,
    prefetch_base_digests,
    selection_digests,
    selection_relation,
    write_digests,
)
from .selection_scan import publish_pool, scan_positions
from .signing import sign_into
from .stats import compute_stats, narrow_stats
from .store import ROW_GROUP_BYTES, ROW_GROUP_ROWS, SHARD_BYTES, StoreReader, validate_name
from .streaming import StreamChecks

LOG = logging.getLogger(__name__)

# DuckDB's share of memory while publishing (checks, digests, stats): beyond it the sorts and
# aggregates spill to a directory under .staging, so publishing 10M rows stays well under
# 1 GiB (bench/import_stream.py).  A query that cannot run in it is run again unbounded.
PUBLISH_MEMORY = "256MiB"


class DatasetStore(StoreReader):
    """The store: layout and reads (``StoreReader``) plus writing new versions.

    Publishing lives here with the writer; the store module knows the layout and reads.
    """

    def writer(self, name: str, kind: str, *, step: Step | dict[str, Any],
               parents: list[Manifest | ParentRef] = (), provenance: dict[str, Any] | None = None,
               reuse_identical: bool = True) -> VersionWriter:
        return VersionWriter(self, validate_name(name), kind, step=step, parents=list(parents),
                             provenance=provenance or {}, reuse_identical=reuse_identical)

    def after_publish(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Extend the derived catalog (a failure only warns: the version is safe); ``con``: the
        publish's connection, to extend it in (``catalog.refresh_catalog``)."""
        from .catalog import refresh_catalog

        try:
            refresh_catalog(self, con=con)
        except Exception as exc:  # the version is safe; the catalog is only derived
            LOG.warning(f"catalog not refreshed ({exc}); run `thinkforge catalog rebuild`")


def publish_dir(store: StoreReader, staging: Path, manifest_fields: dict[str, Any]) -> Manifest:
    """Rename ``staging`` to the next free version number, retrying when a racer wins."""
    base = store.datasets_dir / manifest_fields["name"]
    created = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    try:
        return _publish_into(store, staging, manifest_fields, base)
    except BaseException:
        if created:  # a failed first publish (disk full) leaves no empty dataset directory
            try:
                base.rmdir()
            except OSError:
                pass  # not empty: a racing writer published into it meanwhile
        raise


def _publish_into(store: StoreReader, staging: Path, manifest_fields: dict[str, Any],
                  base: Path) -> Manifest:
    for _ in range(1000):
        dirs = store.version_dirs(manifest_fields["name"])
        # above every logged number too: a deleted version's number is never logged twice
        logged = PublishLog(store).logged_numbers(manifest_fields["name"])
        number = max([n for n, _ in dirs] + list(logged), default=0) + 1
        # a directory without manifest (crashed copy by hand) still blocks its number
        while (base / f"v{number}").exists():
            number += 1
        manifest = Manifest(version=f"v{number}", **manifest_fields)
        tmp = staging / "manifest.json.tmp"
        tmp.write_text(manifest.to_json(), encoding="utf-8")
        os.replace(tmp, staging / "manifest.json")
        # signed with the key outside the store when there is one (signing.py)
        sign_into(staging, manifest, manifest_digest(manifest.to_json()), store.root)
        (staging / OWNER).unlink(missing_ok=True)  # a published version holds only its files
        try:
            os.rename(staging, base / manifest.version)
        except OSError:
            if (base / manifest.version).exists():
                continue  # another writer took this number first: take the next one
            raise
        # the publish log (integrity.py): verify holds every manifest against these bytes
        PublishLog(store).append(manifest, manifest_digest(manifest.to_json()))
        return manifest
    raise ConflictError(f"could not find a free version number for {manifest_fields['name']}")


class VersionWriter:
    def __init__(self, store: DatasetStore, name: str, kind: str, *, step: Step | dict[str, Any],
                 parents: list[Manifest | ParentRef], provenance: dict[str, Any],
                 reuse_identical: bool):
        self.store, self.name, self.kind = store, name, kind
        self.schema = schema_for(kind)
        self.step = step if isinstance(step, Step) else Step.model_validate(step)
        self.parents = [p.as_parent() if isinstance(p, Manifest) else p for p in parents]
        self.provenance = provenance
        # facts exports need (the policy model, the rollouts' prompt template) travel down
        # the lineage in each manifest, so a pulled version exports the same bytes
        inherited = next((p.provenance["export"] for p in parents
                          if isinstance(p, Manifest) and p.provenance.get("export")), None)
        if inherited is not None and "export" not in provenance:
            provenance["export"] = inherited
        self.reuse_identical = reuse_identical
        reclaim(store)  # what killed writers left behind (their owner process is gone)
        self.staging = store.root / ".staging" / uuid.uuid4().hex
        (self.staging / "data").mkdir(parents=True)
        claim(self.staging)
        (self.staging / "rejected").mkdir()
        self._writer: pq.ParquetWriter | None = None
        self._written_bytes = 0
        self._shards = 0
        self._rejected_shards = 0
        self.manifest: Manifest | None = None
        self.reused = False
        self.selection_info: dict[str, Any] | None = None
        self._memory_limit: str | None = PUBLISH_MEMORY
        self._spill: Path | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._borrowed: duckdb.DuckDBPyConnection | None = None
        # rows given to write() are checked, digested and counted as they come (streaming.py);
        # a shard made elsewhere (new_shard_path) sends the publish back to scanning them all
        self._stream: StreamChecks | None = None
        self._foreign_shards = False
        # sha256 of the files this publish hashed, with each file's stamp while it was read:
        # handed to the store's hash cache once published (_remember_hashes)
        self._hashed: dict[str, tuple[list[int], str]] = {}

    def __enter__(self) -> VersionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.manifest is None:
                self.publish()
        finally:
            self._close()
            if self._stream is not None:
                self._stream.close()
            if self._spill is not None:
                shutil.rmtree(self._spill, ignore_errors=True)
            if self.manifest is None or self.reused or exc_type is not None:
                self.store.remove_staging(self.staging)

    def use_connection(self, con: duckdb.DuckDBPyConnection) -> None:
        """Publish with ``con`` (a filter step's own connection, bounded by the step's memory
        limit and spilling where the step does) instead of opening one; left open."""
        self._borrowed = con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """The publish's one connection (checks, digests, stats, rejected counts): bounded by
        ``PUBLISH_MEMORY``, spilling under .staging; closed when the publish ends.  A
        borrowed connection (``use_connection``) serves the first attempt."""
        if self._con is None:
            if self._borrowed is not None and self._memory_limit is not None:
                return self._borrowed
            self._con = connect(memory_limit=self._memory_limit, temp_directory=self._spill_dir())
        return self._con

    def _disconnect(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _spill_dir(self) -> Path | None:
        if self._memory_limit is None:
            return None
        if self._spill is None:
            self._spill = self.store.root / ".staging" / f"spill-{uuid.uuid4().hex}"
            self._spill.mkdir(parents=True, exist_ok=True)
            claim(self._spill)  # a killed publish's spill directory is reclaimed later
        return self._spill

    # -- data --------------------------------------------------------------------------------
    def new_shard_path(self) -> Path:
        """Path of the next data shard, for writers that produce Parquet themselves (DuckDB)."""
        self._foreign_shards = True
        return self._next_shard_path()

    def _next_shard_path(self) -> Path:
        self._close()
        path = self.staging / "data" / f"part-{self._shards:05d}.parquet"
        self._shards += 1
        return path

    def write(self, rows: pa.Table | pa.RecordBatch | list[dict]) -> None:
        table = conform(rows, self.schema, where=f"{self.name} ({self.kind})")
        if table.num_rows == 0:
            return
        if not self._foreign_shards:
            if self._stream is None:
                self._stream = StreamChecks(self.schema, self.kind, self.staging / DIGESTS_FILE,
                                            schema_to_json(self.schema))
            self._stream.add(table)
        if self._writer is None or self._written_bytes > SHARD_BYTES:
            path = self._next_shard_path()
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
            self._written_bytes = 0
        per_row = max(1, table.nbytes // max(1, table.num_rows))
        self._writer.write_table(table, row_group_size=max(1, min(ROW_GROUP_ROWS,
                                                                  ROW_GROUP_BYTES // per_row)))
        self._written_bytes += table.nbytes

    def reject(self, rows: pa.Table | list[dict], reason: str | None = None) -> None:
        """Keep dropped rows with a ``reason`` column (nothing vanishes silently)."""
        table = pa.Table.from_pylist(rows) if isinstance(rows, list) else rows
        if table.num_rows == 0:
            return
        if "reason" not in table.column_names:
            if reason is None:
                raise ValueError("rejected rows need a `reason` column or a reason argument")
            table = table.append_column("reason", pa.array([reason] * table.num_rows, pa.string()))
        path = self.new_rejected_path()
        pq.write_table(table, path, compression="zstd")

    def new_rejected_path(self) -> Path:
        path = self.staging / "rejected" / f"part-{self._rejected_shards:05d}.parquet"
        self._rejected_shards += 1
        return path

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- publish -----------------------------------------------------------------------------
    def select(self, info: dict[str, Any], columns: list[str], rejected_columns: list[str],
               rejected_extra: list[str]) -> tuple[Path, Path]:
        """Make this version a selection over ``info`` (``selection.base_of``): returns the
        paths of the selection file and of the rejected selection file to write."""
        self.selection_info = {**info, "columns": list(columns),
                               "rejected_columns": list(rejected_columns),
                               "rejected_extra": list(rejected_extra)}
        return self.staging / SELECTION_FILE, self.staging / REJECTED_SELECTION_FILE

    def publish(self) -> Manifest:
        self._close()
        try:
            return self._publish()
        except duckdb.OutOfMemoryException:
            if self._memory_limit is None:
                raise
            self._disconnect()
            self._memory_limit = None  # rows too wide for the bound: the same work, unbounded
            return self._publish()
        finally:
            self._disconnect()

    def _publish(self) -> Manifest:
        stream = self._stream
        if stream is not None:
            stream.close()
        if self.selection_info is not None:
            if stream is not None:  # rows written before select(): their digests are not this version's
                (self.staging / DIGESTS_FILE).unlink(missing_ok=True)
            return self._publish_selection()
        data = sorted((self.staging / "data").glob("*.parquet"))
        if stream is not None:
            if not self._foreign_shards and stream.rows and data:
                return self._publish_streamed(data, stream)
        if not data:
            pq.write_table(self.schema.empty_table(), self._next_shard_path(), compression="zstd")
            data = sorted((self.staging / "data").glob("*.parquet"))
        files = [self._entry(p) for p in data]
        for path in data:
            self._check_schema(path)
        self._check_values(data)
        rejected = self._rejected_summary(sorted((self.staging / "rejected").glob("*.parquet")))
        digest_bytes = write_digests(self._connect(), data, self.schema.names,
                                     self.staging / DIGESTS_FILE)
        fp = content_fingerprint(schema_to_json(self.schema), digest_bytes)
        stats = compute_stats(parquet_source(data), self.schema, con=self._connect())
        return self._finish(fp, files, rejected, stats, digests=self._entry(self.staging / DIGESTS_FILE))

    def _publish_streamed(self, data: list[Path], stream: StreamChecks) -> Manifest:
        """The publish of rows that all came through ``write``: the checks, digests and
        stats were made as they came (streaming.py); only the ``NARROW`` stats scan the
        shards again, and only their narrow columns."""
        files = [self._entry(p) for p in data]
        for path in data:
            self._check_schema(path)
        for column, n in stream.required.items():
            if n:
                self._missing_values(column, n)
        for column in stream.enums:
            if column in stream.bad:
                self._invalid_values(column, stream.bad[column])
        src = parquet_source(data)
        if stream.repeated_key:  # a 64-bit key hash seen twice: the exact check decides
            self._check_keys(src)
        rejected = self._rejected_summary(sorted((self.staging / "rejected").glob("*.parquet")))
        stats = stream.stats.finish(narrow_stats(self._connect(), lambda _: src, set(self.schema.names)))
        return self._finish(stream.fingerprint.hexdigest(), files, rejected, stats,
                            digests=self._entry(self.staging / DIGESTS_FILE))

    def _publish_selection(self) -> Manifest:
        """Publish ``selection.parquet`` (+ rejected positions): checks, digests, stats."""
        info = self.selection_info
        sel_path = self.staging / SELECTION_FILE
        rej_path = self.staging / REJECTED_SELECTION_FILE
        columns = list(info["columns"])
        con = self._connect()
        # the positions kept when the digests are taken from them (selection.gathers), the
        # base's digests read meanwhile; both on every thread the connection may use
        keep = gathers(info, self.schema.names, columns)
        with publish_pool(con) as pool:
            base = prefetch_base_digests(self.store, info, pool) if keep else None
            try:
                used, ascending, dup, seen, positions = scan_positions(
                    sel_path, info["base_files"], keep=keep, pool=pool)
            except InputDataError as exc:
                raise InputDataError(f"{self.name}: {exc}") from None
            if dup:
                raise InputDataError(f"{self.name}: {dup} row(s) of the base selected twice",
                                     hint="a selection drops or reorders rows; it never repeats one")
            self._check_values([sel_path], only=set(columns))
            digest_bytes = selection_digests(con, self.store, sel_path, info, used,
                                             self.schema.names, columns, positions,
                                             base=base, pool=pool)
            del positions, base
        fp = content_fingerprint(schema_to_json(self.schema), digest_bytes)
        entry = self._entry(sel_path)
        rej_entry = None
        if rej_path.is_file() and pq.ParquetFile(rej_path).metadata.num_rows == 0:
            rej_path.unlink()
        plain = sorted(p for p in (self.staging / "rejected").glob("*.parquet") if p != rej_path)
        if rej_path.is_file():
            rej_entry = self._entry(rej_path)
            rejected = self._rejected_summary([rej_path, *plain])
            rejected = rejected.model_copy(update={"files": [f for f in rejected.files
                                                             if f.path != rej_entry.path]})
        else:
            rejected = self._rejected_summary(plain)
        selection = Selection(
            base=info["base"], base_columns=info["base_columns"], base_files=info["base_files"],
            base_digests=info["base_digests"], used=used, file=entry, columns=columns,
            rejected=rej_entry, rejected_columns=info["rejected_columns"] if rej_entry else [],
            rejected_extra=info["rejected_extra"] if rej_entry else [], ascending=ascending)
        stats = compute_stats(selection_relation(self.store, selection, sel_path, self.schema.names),
                              self.schema, stored=set(columns),
                              relation=lambda cols: selection_relation(self.store, selection,
                                                                       sel_path, cols),
                              chars_sql=chars_relation(self.store, sel_path, info)
                              if "output" in self.schema.names else None, con=con,
                              counted={**self._base_counts(info, columns, used, seen),
                                       **self._stored_counts(sel_path, columns, entry.rows)})
        return self._finish(fp, [], rejected, stats, selection=selection, rows=entry.rows)

    def _stored_counts(self, sel_path: Path, stored: list[str], rows: int) -> dict[str, dict[str, int]]:
        """``by_<column>`` of the string columns the selection stores (a pass rate's bucket),
        counted from the file's dictionary codes as the base's are (every row of the file is a
        row of the version): ~3 ms instead of a ~15 ms string GROUP BY."""
        from .selection_stats import base_counts
        from .stats import COUNT_COLUMNS

        columns = [c for c in COUNT_COLUMNS if c in stored and c in self.schema.names
                   and pa.types.is_string(self.schema.field(c).type)]
        if not columns or not rows:
            return {}
        import numpy as np

        return base_counts([sel_path], [0, rows], np.ones(rows, dtype=bool), columns)

    def _base_counts(self, info: dict[str, Any], stored: list[str], used: list[int],
                     seen) -> dict[str, dict[str, int]]:
        """``by_<column>`` of the base's string columns the selection does not store, counted
        at the rows the position check marked (``selection_stats.py``: no SQL scan)."""
        from .selection_stats import base_counts
        from .stats import COUNT_COLUMNS

        columns = [c for c in COUNT_COLUMNS if c in self.schema.names and c in info["base_columns"]
                   and c not in stored and pa.types.is_string(self.schema.field(c).type)]
        if not columns:
            return {}
        files, offsets = info["base_files"], [0]
        for f in files:
            offsets.append(offsets[-1] + f.rows)
        paths = [self.store.root / f.path if n else None for f, n in zip(files, used, strict=True)]
        return base_counts(paths, offsets, seen, columns)

    def _finish(self, fp: str, files: list[FileEntry], rejected: Rejected, stats: dict[str, Any],
                digests: FileEntry | None = None, selection: Selection | None = None,
                rows: int | None = None) -> Manifest:
        if self.reuse_identical:
            same = self.store.find_reusable(self.name, self.step, self.parents)
            if same is not None and same.fingerprint == fp:
                self.manifest, self.reused = same, True
                return same
        fields = dict(
            name=self.name, kind=self.kind, fingerprint=fp, created_at=utc_now(),
            created_by=created_by(), parents=self.parents, step=self.step,
            schema=schema_to_json(self.schema), files=files,
            rows=sum(f.rows for f in files) if rows is None else rows,
            stats=stats, rejected=rejected, provenance=self.provenance, digests=digests,
            selection=selection, digest_scheme=DIGEST_SCHEME)
        self.manifest = publish_dir(self.store, self.staging, fields)
        self._remember_hashes()
        # the connection the checks and stats used (the step's, or the publish's own)
        self.store.after_publish(self._con if self._con is not None else self._borrowed)
        return self.manifest

    def _entry(self, path: Path) -> FileEntry:
        before = path.stat()
        digest = sha256_file(path)
        after = path.stat()
        rel = str(path.relative_to(self.staging))
        if file_stamp(before) == file_stamp(after):  # unchanged while it was read
            self._hashed[rel] = (file_stamp(after), digest)
        return FileEntry(path=rel, bytes=after.st_size,
                         rows=pq.ParquetFile(path).metadata.num_rows, sha256=digest)

    def _remember_hashes(self) -> None:
        """The sha256 this publish computed, in the store's hash cache under the published
        paths: the next step that reads the version (store.verify) does not hash its files
        again.  Publishing renames the staging directory, which moves no file: each file
        keeps its inode, size, mtime and ctime, so the entry holds only while the file is
        the one that was hashed (a later write moves its ctime: rehashed, as always).
        Best effort, like the cache itself."""
        from .integrity import HashCache

        if not self._hashed:
            return
        version_dir = self.store.version_dir(self.manifest)
        cache = HashCache(self.store)
        try:
            for _, entry, path in self.store.version_files(self.manifest):
                hashed = self._hashed.get(entry.path)
                if hashed is not None and path == version_dir / entry.path:
                    cache.remember(path, *hashed)
        except OSError:
            return
        cache.save()

    def _check_schema(self, path: Path) -> None:
        got = pq.read_schema(path)
        if got.names != self.schema.names or not all(
                types_match(g.type, w.type) for g, w in zip(got, self.schema, strict=True)):
            raise InputDataError(
                f"{self.name}: shard {path.name} does not match the {self.kind} schema: got "
                f"{[(f.name, str(f.type)) for f in got]}",
                hint=f"expected {[(f.name, str(f.type)) for f in self.schema]}")

    def _check_values(self, data: list[Path], only: set[str] | None = None) -> None:
        """Required columns non-null, enumerated columns in range, row keys unique.

        One scan counts every violation; examples are fetched only when there is one.
        ``only``: check just these columns (a selection's stored columns; the others are
        its base's, checked when the base was published; its keys are unique when its
        positions are).
        """
        want = set(self.schema.names) if only is None else only
        required = [f.name for f in self.schema if not f.nullable and f.name in want]
        enums = [f.name for f in self.schema if f.name in ENUMS and f.name in want]
        if not required and not enums and only is not None:
            return
        counts = [f"count(*) FILTER (WHERE {quote_ident(c)} IS NULL)" for c in required] + [
            f"count(*) FILTER (WHERE NOT list_contains(?, {quote_ident(c)}))" for c in enums]
        con = self._connect()
        src = parquet_source(data)
        found = con.execute(f"SELECT {', '.join(counts)} FROM {src}",
                            [list(ENUMS[c]) for c in enums]).fetchall()[0]
        for column, n in zip(required, found[:len(required)], strict=True):
            if n:
                self._missing_values(column, n)
        for column, n in zip(enums, found[len(required):], strict=True):
            if n:
                col = quote_ident(column)
                bad = con.execute(f"SELECT DISTINCT {col} FROM {src} WHERE NOT "
                                  f"list_contains(?, {col}) LIMIT 5", [list(ENUMS[column])]).fetchall()
                self._invalid_values(column, [b[0] for b in bad])
        if only is None:
            self._check_keys(src)

    def _missing_values(self, column: str, n: int) -> None:
        raise InputDataError(f"{self.name}: {n} row(s) have no value for required column {column!r}")

    def _invalid_values(self, column: str, bad: list[Any]) -> None:
        raise InputDataError(f"{self.name}: column {column!r} has invalid value(s) {bad}",
                             hint=f"allowed: {', '.join(ENUMS[column])}")

    def _check_keys(self, src: str) -> None:
        """Row keys unique: the exact check, a GROUP BY of the keys over every shard."""
        con = self._connect()
        keys = ", ".join(quote_ident(k) for k in ROW_KEYS[self.kind])
        dup = con.execute(f"SELECT {keys}, count(*) AS n FROM {src} GROUP BY ALL HAVING n > 1 "
                          "LIMIT 3").fetchall()
        if dup:
            raise InputDataError(
                f"{self.name}: duplicate row key ({keys}) in {len(dup)}+ case(s), e.g. {dup[0][:-1]}",
                hint="each row of a version must be unique on its key; deduplicate the input")

    def _rejected_summary(self, paths: list[Path]) -> Rejected:
        if not paths:
            return Rejected()
        by_reason = dict(self._connect().execute(
            f"SELECT reason, count(*) FROM read_parquet([{', '.join('?' for _ in paths)}], "
            "union_by_name=true) GROUP BY reason ORDER BY reason", [str(p) for p in paths]
        ).fetchall())
        return Rejected(rows=sum(by_reason.values()), by_reason=by_reason,
                        files=[self._entry(p) for p in paths])
