"""What a materialised version's publish needs, gathered as its rows are written.

``VersionWriter.write`` hands each table here before it goes to Parquet: one DuckDB query
over the table in memory gives each row's digest (``selection.digest_expr``), its
``length(output)`` and a 64-bit hash of its key; the digests stream to ``digests.parquet``
and into the fingerprint's sha256, the key hashes into ``HashRuns`` (8 bytes a row), and
required / enumerated values and the stats (``stats.StatsAccumulator``) are counted with
Arrow.  So the publish reads no row again but for a narrow scan of the columns some
stats group by (``stats.NARROW``): the text is read once, when it is written, and memory
stays bounded by the batch (bench/README.md "pipeline_scale.py").

The checks are the publish's, with the same errors: a 64-bit key hash seen twice sends the
publish to its exact ``GROUP BY`` of the keys (a true duplicate is reported with its key;
two keys sharing a hash are not a duplicate), so nothing rests on the hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .duck import connect, quote_ident
from .schemas import ENUMS, ROW_KEYS
from .selection import _FP_TAG, digest_expr
from .stats import StatsAccumulator


class HashRuns:
    """64-bit hashes seen so far, as sorted runs merged like a binary counter (no argsort
    of the whole set, ~8 bytes a hash); ``add`` says whether a hash was seen before."""

    def __init__(self):
        self.runs: list[np.ndarray] = []

    def add(self, hashes: np.ndarray) -> bool:
        if not len(hashes):
            return False
        new = np.sort(hashes)
        repeated = bool(len(new) > 1 and (new[1:] == new[:-1]).any())
        for run in self.runs:
            pos = np.minimum(np.searchsorted(run, new), len(run) - 1)
            repeated |= bool((run[pos] == new).any())
        self.runs.append(new)
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            b, a = self.runs.pop(), self.runs.pop()
            at = np.searchsorted(a, b) + np.arange(len(b))  # merged by position
            merged = np.empty(len(a) + len(b), dtype=a.dtype)
            old = np.ones(len(merged), dtype=bool)
            old[at] = False
            merged[at] = b
            merged[old] = a
            del a, b, old, at
            self.runs.append(merged)
        return repeated


class StreamChecks:
    """Digests, fingerprint, key hashes, value checks and stats of the rows written so far."""

    def __init__(self, schema: pa.Schema, kind: str, digests_path: Path, schema_json: list[dict[str, Any]]):
        self.schema, self.names = schema, schema.names
        self.path = digests_path
        self.output = "output" in self.names
        self.fingerprint = hashlib.sha256(_FP_TAG)
        self.fingerprint.update(json.dumps(schema_json, sort_keys=True).encode())
        keys = ", ".join(quote_ident(k) for k in ROW_KEYS[kind])
        self.sql = (f"SELECT {digest_expr(self.names)} AS d"
                    + (", length(output)::BIGINT AS chars" if self.output else "")
                    + f", hash({keys}) AS k FROM _tf_rows")
        self.keys = HashRuns()
        self.repeated_key = False
        self.required = {f.name: 0 for f in schema if not f.nullable}  # nulls seen
        self.enums = {c: ENUMS[c] for c in self.names if c in ENUMS}
        self.bad: dict[str, list[Any]] = {}  # enumerated column -> first invalid values
        self.stats = StatsAccumulator(schema)
        self.rows = 0
        self._con = connect(threads=2)
        self._writer: pq.ParquetWriter | None = None

    def add(self, table: pa.Table) -> None:
        import pyarrow.compute as pc  # lazily: 45 ms of every step's start

        self._con.register("_tf_rows", table)
        try:
            out = self._con.sql(self.sql).to_arrow_table()
        finally:
            self._con.unregister("_tf_rows")
        digests = out.select(["d", "chars"] if self.output else ["d"])
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, digests.schema, compression="zstd")
        self._writer.write_table(digests)
        for chunk in out.column("d").chunks:
            self.fingerprint.update(_u64(chunk).astype("<u8", copy=False).tobytes())
        self.repeated_key |= self.keys.add(np.concatenate([_u64(c) for c in out.column("k").chunks]))
        for name in self.required:
            self.required[name] += table.column(name).null_count
        for name, allowed in self.enums.items():
            col = table.column(name)
            bad = pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=pa.array(allowed))))
            if pc.any(bad).as_py():
                seen = self.bad.setdefault(name, [])
                seen += [v for v in pc.unique(col.filter(bad)).to_pylist() if v not in seen][:5 - len(seen)]
        self.stats.add(table, out.column("chars") if self.output else None)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._con is not None:
            self._con.close()
            self._con = None


def _u64(chunk: pa.Array) -> np.ndarray:
    return np.frombuffer(chunk.buffers()[1], dtype=np.uint64, count=len(chunk), offset=chunk.offset * 8)
