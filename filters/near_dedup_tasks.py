"""Near dedup on Dask: the tasks the workers run (phases 1, 3, 4, 6 and 8 of
``partitioned_dedup``, whose docstring tells the whole run; the driver's own phases
are there).  Each task reads its own rows or files and writes narrow files; rows never
pass through the scheduler."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from thinkforge.manifests.partitions import Partition, running, threads_here


def _setup(store_at, data_ref: str, config, resources, hosts):
    from thinkforge.manifests.schemas import schema_for

    from .base import Resources
    from .text import text_expr

    store_cls, root = store_at
    store = store_cls(root)
    data = store.resolve(data_ref)
    columns = schema_for(data.kind).names
    res = Resources(**{"progress": False, **resources})
    if res.threads is None:
        res.threads = threads_here(hosts)
    paired = "pair_id" in columns
    return (store, data, columns, text_expr(config.on, columns), res,
            paired and config.on == "input", paired and config.on == "output")


@contextlib.contextmanager
def _task_connection(store, res):
    """A task's bounded DuckDB connection; closed, and its spill directory removed, after."""
    from .base import open_connection

    con, spill = open_connection(store, res)
    try:
        yield con
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)


# a document's number: its signature task's index above these bits, its row in that task's
# docs file below (an integer key for the joins of the later phases, unique in the run)
_PART_BITS = 40


def _number(index: int, row: int) -> int:
    return (index << _PART_BITS) + row


def _part_of(column: str, parts: list[int]) -> str:
    """SQL: the number in ``column`` is one of signature tasks ``parts``' documents."""
    return f"({column} >> {_PART_BITS}) IN ({', '.join(str(int(p)) for p in parts)})"


# the sets phase is split by position in blocks of 2^_BLOCK_BITS documents (``_sets_split``)
_BLOCK_BITS = 12


def _partition_docs(con, store, data, per_prompt, by_mode, key: str, index: int, count: int,
                    out: str, ranges: dict | None) -> None:
    """``doc_src`` over row partition ``index`` of ``count`` only (its position ``ranges``,
    else by ``key`` hash), and the text functions registered."""
    from .dedup import doc_views
    from .text import register

    register(con)
    with running(Partition(count=count, index=index, keys={data.ref: key}, out=Path(out),
                           ranges=ranges or {})):
        doc_views(con, store, data, per_prompt, by_mode)


def near_signatures(store_at, data_ref: str, config, resources, hosts, key: str, index: int,
                    count: int, out: str, ranges: dict | None = None) -> dict[str, Any]:
    """Phase 1 on a worker: one pass over the words of one row partition's documents.

    Writes the documents (id, group, ``wkey``: DuckDB's hash of the normalised word list,
    the exact-duplicate *pre*-key: equal texts have equal keys; ``n``: its number, see
    ``_number``) and, per bucket task, the band keys (n, band, key) of its buckets
    (``key % count``: every copy of a bucket goes to one file), none for a document
    without words (an Arrow file, ``_band_rows``).  The word list is computed once for
    both (the md5 of the normalised text, a second pass, cost as much as the signatures:
    ``near_sets`` computes it only for the documents whose ``wkey`` repeats)."""
    import pyarrow as pa

    from .dedup import BATCH_ROWS, lsh_params
    from .minhash import MinHasher, band_keys, warm_up
    from .text import pre_key_expr, word_hash_batches, word_hashes_expr

    store, data, _, text, res, per_prompt, by_mode = _setup(store_at, data_ref, config,
                                                           resources, hosts)
    tag = f"p{index:04d}-{uuid.uuid4().hex[:8]}"  # a rerun writes afresh
    docs_path = str(Path(out) / f"docs-{tag}.arrow")
    band_paths = [str(Path(out) / f"bands-b{j:04d}-{tag}.arrow") for j in range(count)]
    bands, rows = lsh_params(config)
    hasher = MinHasher(config.num_perm, config.shingle, config.seed)
    warm_up()
    with _task_connection(store, res) as con:
        _partition_docs(con, store, data, per_prompt, by_mode, key, index, count, out, ranges)
        # DuckDB splits and normalises the text once for both lists (common subexpression)
        wkey = pre_key_expr(text) if config.exact else "NULL::UBIGINT"
        batches = word_hash_batches(con, f"SELECT s.id, s.grp, {wkey} AS wkey, "
                                         f"{word_hashes_expr(text)} AS words FROM doc_src s",
                                    BATCH_ROWS)
        doc_schema = pa.schema([("id", pa.string()), ("grp", pa.string()),
                                ("wkey", pa.uint64()), ("n", pa.int64())])
        band_schema = pa.schema([("n", pa.int64()), ("band", pa.int16()),
                                 ("key", pa.uint64())])
        first = _number(index, 0)
        with contextlib.ExitStack() as stack:
            # Arrow files (``_arrow_rows``), read by this run's tasks only: random keys do
            # not compress; Parquet cost ~0.06 s to write and as much to read per 2.1M band
            # rows, Arrow ~0.01 s (memory-mapped); the driver read 600k ids in 0.06 s
            doc_out = stack.enter_context(pa.ipc.new_file(docs_path, doc_schema))
            band_out = [stack.enter_context(pa.ipc.new_file(p, band_schema)) for p in band_paths]
            for batch, words in batches:
                number = np.arange(first, first + len(batch), dtype=np.int64)
                first += len(batch)
                doc_out.write_table(pa.table([batch.column(0), batch.column(1), batch.column(2),
                                              number], schema=doc_schema))
                sig = hasher.signatures(words)
                keys = band_keys(sig, bands, rows)
                live = ~(sig == np.iinfo(np.uint32).max).all(axis=1)  # no words: no bands
                idx = np.flatnonzero(live)
                doc = np.repeat(idx, bands)
                band = np.tile(np.arange(bands, dtype=np.int16), len(idx))
                flat = keys[live].reshape(-1)
                task = flat % np.uint64(count)
                for j, writer in enumerate(band_out):
                    sel = np.flatnonzero(task == j)
                    writer.write_table(pa.table({"n": number[doc[sel]], "band": band[sel],
                                                 "key": flat[sel]}, schema=band_schema))
    return {"docs": docs_path, "bands": band_paths}


def near_pairs(store_at, data_ref: str, config, resources, hosts, index: int, count: int,
               out: str, bands_files: list[str], exact_file: str,
               docs_files: list[str]) -> dict[str, Any]:
    """Phase 3 on a worker: the candidate pairs of the buckets in its band files (every
    copy of a bucket is there), as the local step makes them, by document number
    (``n``, the smaller first), in one file per verify task (``hash(l, r) % count``): a
    pair that two bands found, in two tasks here, is verified once.  Also returned: how
    many documents of each block of ``_BLOCK`` numbers are in its pairs (``blocks``: the
    driver splits the sets phase by them, ``_sets_split``).

    Numbers, not ids: integer joins (the ids cost half of this task).  The local step
    pairs a bucket of more than ``ALL_PAIRS_UP_TO`` rows around its smallest *id*, which
    the numbers do not order: those buckets (rare) get their members' ids from
    ``docs_files``; pairs are unordered (the clusters' edges), so the rest needs none.
    Most shared buckets hold two rows: their pair is the bucket's (min, max), so only the
    band rows of bigger buckets are read a second time.  Most band keys are their
    bucket's only one: ``minhash.maybe_shared`` drops most of those before DuckDB groups
    the rest (4.2M -> ~1M rows here; grouping every row was 0.6-0.8 s of a ~0.9 s task)."""
    import pyarrow as pa
    from thinkforge.manifests.duck import parquet_source

    from .dedup import ALL_PAIRS_UP_TO
    from .minhash import maybe_shared, warm_up

    store, _, _, _, res, _, _ = _setup(store_at, data_ref, config, resources, hosts)
    tag = uuid.uuid4().hex[:8]
    paths = [str(Path(out) / f"pairs-p{index:04d}-v{i:04d}-{tag}.parquet") for i in range(count)]
    warm_up()
    rows = _arrow_rows(bands_files)
    with _task_connection(store, res) as con:
        # the rows whose key repeats, less the exact duplicates: a superset of the rows
        # of buckets shared after the duplicates leave (the buckets, their sizes and
        # members are those of all the rows left)
        con.register("repeated", rows.filter(pa.array(maybe_shared(rows.column("key").to_numpy()))))
        con.execute(f"CREATE TEMP TABLE shared AS SELECT * FROM repeated ANTI JOIN "
                    f"{parquet_source([exact_file])} e ON e.n = repeated.n")
        con.execute("CREATE TEMP TABLE buckets AS SELECT band, key, count(*) AS size, min(n) AS "
                    "lo, max(n) AS hi FROM shared GROUP BY band, key HAVING count(*) > 1")
        con.execute("CREATE TEMP TABLE mine AS SELECT b.n, b.band, b.key, k.size FROM shared b "
                    "JOIN (SELECT band, key, size FROM buckets WHERE size > 2) k USING (band, key)")
        con.execute(f"CREATE TEMP TABLE pairs AS SELECT lo AS l, hi AS r FROM buckets WHERE "
                    f"size = 2 UNION SELECT a.n, b.n FROM mine a JOIN mine b ON a.band = b.band "
                    f"AND a.key = b.key AND a.n < b.n WHERE a.size <= {ALL_PAIRS_UP_TO}")
        if con.execute(f"SELECT count(*) FROM mine WHERE size > {ALL_PAIRS_UP_TO}").fetchall()[0][0]:
            con.register("docs", _arrow_rows(docs_files))
            con.execute(f"""
                INSERT INTO pairs SELECT least(n, first), greatest(n, first) FROM (
                    SELECT m.n, arg_min(m.n, d.id) OVER (PARTITION BY m.band, m.key) AS first
                      FROM mine m JOIN docs d USING (n)
                     WHERE m.size > {ALL_PAIRS_UP_TO}) WHERE n <> first
                EXCEPT SELECT l, r FROM pairs""")
        for i, path in enumerate(paths):
            con.execute(f"COPY (SELECT l, r FROM pairs WHERE hash(l, r) % {int(count)} = {i}) "
                        f"TO '{path}' (FORMAT parquet)")
        blocks = con.execute(f"SELECT n >> {_BLOCK_BITS}, count(*) FROM (SELECT l AS n FROM pairs "
                             "UNION SELECT r FROM pairs) GROUP BY ALL").fetchall()
    return {"pairs": paths, "blocks": blocks}


def _arrow_rows(paths: list[str]):
    """The rows of ``near_signatures``' Arrow files (documents, band rows), memory-mapped."""
    import pyarrow as pa

    return pa.concat_tables(pa.ipc.open_file(pa.memory_map(p)).read_all() for p in paths)


def near_sets(store_at, data_ref: str, config, resources, hosts, key: str, index: int,
              count: int, out: str, cand_file: str | None, pairs_files: list[str],
              docs_files: list[str], parts: list[int], ranges: dict | None = None) -> dict[str, Any]:
    """Phase 4 on a worker, over its own rows (``ranges``: a run of positions that
    ``_sets_split`` balanced; else the signature task's partition): one read of the texts
    of its documents that are exact candidates (``cand_file``: the md5 of the normalised
    text, the local exact key, which the driver checks against the pre-keys) or in a
    candidate pair (their sorted shingle sets, ``minhash.sorted_sets``: raw uint64 in
    ``sets``, each document's (id, n, group, part, start, size) in ``index``).  The verify
    tasks read these sets instead of every row of the source again.  Its rows are
    documents of signature tasks ``parts`` (``_PART_BITS``; ids from their ``docs_files``);
    which of those are its own, the join of the ids with its rows says."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from thinkforge.manifests.duck import parquet_source

    from .dedup import BATCH_ROWS
    from .minhash import MinHasher, sorted_sets, warm_up
    from .text import normalized_expr, word_hash_batches, word_hashes_expr

    store, data, _, text, res, per_prompt, by_mode = _setup(store_at, data_ref, config,
                                                           resources, hosts)
    tag = f"p{index:04d}-{uuid.uuid4().hex[:8]}"
    paths = {"md5": str(Path(out) / f"md5-{tag}.parquet") if cand_file else None,
             "index": str(Path(out) / f"sets-{tag}.parquet"),
             "sets": str(Path(out) / f"sets-{tag}.bin")}
    hasher = MinHasher(config.num_perm, config.shingle, config.seed)
    warm_up()
    with _task_connection(store, res) as con:
        _partition_docs(con, store, data, per_prompt, by_mode, key, index, count, out, ranges)
        pairs = parquet_source(pairs_files)
        con.register("docs", _arrow_rows(docs_files))
        con.execute(f"CREATE TEMP TABLE need AS SELECT d.id, d.n FROM docs d SEMI JOIN "
                    f"(SELECT l AS n FROM {pairs} WHERE {_part_of('l', parts)} UNION SELECT r FROM {pairs} WHERE "
                    f"{_part_of('r', parts)}) USING (n)")
        cand = (f"(SELECT id, wkey, n FROM {parquet_source([cand_file])} WHERE "
                f"{_part_of('n', parts)})"
                if cand_file else
                "(SELECT NULL::VARCHAR AS id, NULL::UBIGINT AS wkey, NULL::BIGINT AS n WHERE false)")
        # the texts read once for both (the scan of the row partition is most of the cost)
        con.execute(f"CREATE TEMP TABLE own AS SELECT s.id, w.n, s.grp, {text} AS t FROM doc_src s "
                    f"JOIN (SELECT id, n FROM {cand} UNION SELECT id, n FROM need) w USING (id)")
        if cand_file:
            con.execute(f"COPY (SELECT o.id, o.grp, c.wkey, c.n, md5({normalized_expr('o.t')}) "
                        f"AS norm_key FROM own o JOIN {cand} c USING (id)) TO '{paths['md5']}' "
                        "(FORMAT parquet)")
        ids, numbers, grps, sizes = [], [], [], []
        with open(paths["sets"], "wb") as flat_out:
            for batch, words in word_hash_batches(
                    con, f"SELECT o.id, o.n, o.grp, {word_hashes_expr('o.t')} AS words FROM own o "
                    "SEMI JOIN need USING (n)", BATCH_ROWS):
                flat, counts = sorted_sets(hasher, words)
                flat.astype(np.uint64, copy=False).tofile(flat_out)
                ids.append(batch.column(0))
                numbers.append(batch.column(1))
                grps.append(batch.column(2))
                sizes.append(counts)
    size = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
    pq.write_table(pa.table({
        "id": pa.chunked_array(ids, pa.string()), "n": pa.chunked_array(numbers, pa.int64()),
        "grp": pa.chunked_array(grps, pa.string()),
        "part": np.full(len(size), index, dtype=np.int32),
        "start": np.cumsum(size) - size, "size": size}), paths["index"], use_dictionary=["grp"])
    return paths


def near_verify(store_at, data_ref: str, config, resources, hosts, index: int, count: int,
                out: str, pairs_files: list[str], sets: list[dict[str, Any]]) -> str:
    """Phase 6 on a worker: the exact Jaccard of its share of the candidate pairs (a pair
    that several bands found is here once), as the local step computes it
    (``dedup._candidate_jaccard``: |A & B| / |A | B| of the two shingle sets; two empty
    sets: 1), from the row partitions' ``near_sets`` (memory-mapped: the pages its pairs
    touch)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from thinkforge.manifests.duck import parquet_source

    from .minhash import jaccard_ratio, set_intersections

    store, _, _, _, res, _, _ = _setup(store_at, data_ref, config, resources, hosts)
    path = str(Path(out) / f"verified-p{index:04d}-{uuid.uuid4().hex[:8]}.parquet")
    with _task_connection(store, res) as con:
        con.execute(f"CREATE TEMP TABLE pairs AS SELECT DISTINCT l, r FROM "
                    f"{parquet_source(pairs_files)}")
        con.execute(f"CREATE TEMP TABLE sets AS SELECT * FROM "
                    f"{parquet_source([s['index'] for s in sets])}")
        found = con.sql(
            "SELECT a.id AS l, b.id AS r, p.l AS ln, p.r AS rn, a.grp = b.grp AS same, "
            "a.part AS pa, a.start AS sa, "
            "a.size AS za, b.part AS pb, b.start AS sb, b.size AS zb FROM pairs p "
            "JOIN sets a ON a.n = p.l JOIN sets b ON b.n = p.r").to_arrow_table()
        if len(found) != (pairs := con.execute("SELECT count(*) FROM pairs").fetchall()[0][0]):
            raise RuntimeError(f"near dedup: shingle sets of {len(found)} of {pairs} pairs "
                               f"({out}): a row partition lost rows")
    flats = [_mapped(s["sets"]) for s in sets]
    part_a, part_b = (found.column(c).to_numpy() for c in ("pa", "pb"))
    start_a, size_a, start_b, size_b = (found.column(c).to_numpy().astype(np.int64)
                                        for c in ("sa", "za", "sb", "zb"))
    both = np.zeros(len(found), dtype=np.int64)
    for i in range(len(sets)):
        for j in range(len(sets)):
            sel = np.flatnonzero((part_a == i) & (part_b == j))
            if len(sel):
                both[sel] = set_intersections(flats[i], start_a[sel], size_a[sel], flats[j],
                                              start_b[sel], size_b[sel])
    similarity = jaccard_ratio(both, size_a, size_b)
    pq.write_table(pa.table({"l": found.column("l"), "r": found.column("r"),
                             "ln": found.column("ln"), "rn": found.column("rn"),
                             "similarity": similarity, "same": found.column("same")}), path,
                   use_dictionary=False)
    return path


def _mapped(path: str) -> np.ndarray:
    """A ``near_sets`` file as uint64, memory-mapped (an empty file: an empty array)."""
    if Path(path).stat().st_size == 0:
        return np.zeros(0, dtype=np.uint64)
    return np.asarray(np.memmap(path, dtype=np.uint64, mode="r"))


def near_mark(store_at, data_ref: str, name: str, config, resources, hosts, key: str,
              index: int, count: int, out: str, dups_file: str,
              facts: dict[str, Any], ranges: dict | None = None) -> dict[str, Any]:
    """Phase 8 on a worker: the local step's marking, pair policy and keep/reject for one
    row partition, against the driver's table of duplicates."""
    from thinkforge.manifests.duck import parquet_source

    from .base import run_step
    from .dedup import keep_unique
    from .pairs import resolve_policy

    store, data, columns, _, res, per_prompt, _ = _setup(store_at, data_ref, config, resources,
                                                         hosts)
    policy = resolve_policy(config.pairs, columns)
    partition = Partition(count=count, index=index, keys={data.ref: key},
                          out=Path(out) / f"p{index:04d}-{uuid.uuid4().hex[:8]}",
                          ranges=ranges or {})

    def body(ctx) -> None:
        from .base import source

        con = ctx.con
        con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM {source(store, data)}")
        doc_key = "prompt_id" if per_prompt else "id"
        marks = (f"SELECT id AS doc, reason, rep AS duplicate_of, similarity "
                 f"FROM {parquet_source([dups_file])}")
        ctx.provenance.update(facts)
        if per_prompt:
            ctx.provenance["unit"] = "prompt"
        ctx.provenance.update(keep_unique(ctx, data, columns, policy, marks, doc_key))
        partition.partials["facts"] = facts

    with running(partition):
        return run_step(store, name=name, kind=data.kind, step_type="filter.dedup",
                        config=config, inputs=[data], body=body, resources=res)
