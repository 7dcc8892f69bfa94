"""Near dedup (MinHash + LSH) split across Dask workers by band hash (issue 12 item 3).

LSH buckets cross any partition of the rows, so the local step (``filters/dedup.py``) is
split where its data changes hands:

1. **signatures** (one task per partition of the rows: by position, each task its own row
   groups, when a row is a document (``id`` of prompts / rl_pool); by prompt id hash for sft):
   each task computes, for its documents, the exact key (md5 of the normalised text),
   the MinHash signature and its band keys, and writes two narrow files: documents (id,
   group, exact key) and band keys (id, band, key; none for a document without words).
2. **exact** (the driver, DuckDB over the narrow document files): exact duplicates are
   the rows whose (group, key) a smaller id shares: they leave the LSH, as locally.
3. **buckets** (one task per partition of the *(band, band key)* pairs by their hash):
   every copy of a bucket meets in one task, which makes the local candidate pairs (all
   pairs of a bucket of up to 32 rows, each row with the bucket's smallest id otherwise),
   reads the words of just those rows and computes each pair's exact Jaccard, as locally.
4. **clusters** (the driver): the union of the candidate pairs (a pair found in two bands
   counts once), the verified ones (>= threshold, same group), connected components
   (``minhash.connected_components``) over the rows they touch, the smallest id of each
   cluster kept; one narrow table (id, representative, reason, similarity).
5. **mark** (one task per row partition): the local step's last part (marking, the pair
   policy, keep/reject) against that table; ``partitioned.merge_partitions`` writes ONE
   version: the local bytes, fingerprint and provenance (the driver's counts).

Documents are ids (``idx`` locally is the row number in id order: the same minima).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from thinkforge.manifests.partitions import PHASED, Partition, Phases, running, threads_here

from .partitioned import _PROMPT_KEY, FINISH, merge_partitions


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


def near_signatures(store_at, data_ref: str, config, resources, hosts, key: str, index: int,
                    count: int, out: str, ranges: dict | None = None) -> dict[str, str]:
    """Phase 1 on a worker: documents, signatures and band keys of one row partition."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .base import open_connection
    from .dedup import BATCH_ROWS, doc_views, lsh_params
    from .minhash import MinHasher, band_keys, warm_up
    from .text import normalized_expr, register, word_hash_batches, word_hashes_expr

    store, data, _, text, res, per_prompt, by_mode = _setup(store_at, data_ref, config,
                                                           resources, hosts)
    tag = f"p{index:04d}-{uuid.uuid4().hex[:8]}"  # a rerun writes afresh
    paths = {k: str(Path(out) / f"{k}-{tag}.parquet") for k in ("docs", "bands")}
    bands, rows = lsh_params(config)
    hasher = MinHasher(config.num_perm, config.shingle, config.seed)
    warm_up()
    con, spill = open_connection(store, res)
    try:
        register(con)
        with running(Partition(count=count, index=index, keys={data.ref: key}, out=Path(out),
                               ranges=ranges or {})):
            doc_views(con, store, data, per_prompt, by_mode)
        exact = f"md5({normalized_expr(text)})" if config.exact else "NULL::VARCHAR"
        con.execute(f"CREATE TEMP TABLE docs AS SELECT id, grp, {exact} AS norm_key "
                    "FROM doc_src")
        con.execute(f"COPY docs TO '{paths['docs']}' (FORMAT parquet)")
        band_schema = pa.schema([("id", pa.string()), ("band", pa.int16()),
                                 ("key", pa.uint64())])
        batches = word_hash_batches(con, f"SELECT s.id, s.grp, {word_hashes_expr(text)} AS words "
                                         "FROM doc_src s", BATCH_ROWS)
        with pq.ParquetWriter(paths["bands"], band_schema) as band_out:
            for batch, words in batches:
                ids = batch.column(0)
                sig = hasher.signatures(words)
                keys = band_keys(sig, bands, rows)
                live = ~(sig == np.iinfo(np.uint32).max).all(axis=1)  # no words: no bands
                idx = np.flatnonzero(live)
                band_out.write_table(pa.table({
                    "id": ids.take(pa.array(np.repeat(idx, bands))),
                    "band": np.tile(np.arange(bands, dtype=np.int16), len(idx)),
                    "key": keys[live].reshape(-1)}, schema=band_schema))
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
    return paths


def near_buckets(store_at, data_ref: str, config, resources, hosts, index: int, count: int,
                 out: str, bands_files: list[str], docs_files: list[str],
                 exact_file: str) -> str:
    """Phase 3 on a worker: the buckets whose (band, key) hash to ``index``, their
    candidate pairs and each pair's exact Jaccard, as the local step computes it
    (``dedup._candidate_jaccard``: the words of just the documents in a pair read again;
    writing every document's shingles in phase 1 cost more than the signatures)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from thinkforge.manifests.duck import parquet_source

    from .base import open_connection
    from .dedup import _candidate_jaccard, candidate_pairs_sql, doc_views
    from .minhash import MinHasher, warm_up
    from .text import register

    store, data, _, text, res, per_prompt, by_mode = _setup(store_at, data_ref, config,
                                                           resources, hosts)
    path = str(Path(out) / f"pairs-p{index:04d}-{uuid.uuid4().hex[:8]}.parquet")
    warm_up()
    con, spill = open_connection(store, res)
    try:
        register(con)
        con.execute(f"""
            CREATE TEMP TABLE mine AS SELECT b.id, b.band, b.key FROM {parquet_source(bands_files)} b
            ANTI JOIN {parquet_source([exact_file])} e ON e.id = b.id
            WHERE hash(b.band, b.key) % {int(count)} = {int(index)}""")
        con.execute(f"CREATE TEMP TABLE pairs AS {candidate_pairs_sql('mine', 'id')}")
        # the documents in a pair, numbered, with their group; each pair as two numbers
        con.execute(f"""
            CREATE TEMP TABLE docs AS SELECT (row_number() OVER (ORDER BY id) - 1)::BIGINT AS idx,
              id, grp FROM {parquet_source(docs_files)}
            SEMI JOIN (SELECT l AS id FROM pairs UNION SELECT r FROM pairs) USING (id)""")
        numbered = con.sql(
            "SELECT p.l, p.r, a.idx AS lk, b.idx AS rk, a.grp = b.grp AS same FROM pairs p "
            "JOIN docs a ON a.id = p.l JOIN docs b ON b.id = p.r").to_arrow_table()
        doc_views(con, store, data, per_prompt, by_mode)  # every row: pairs cross partitions
        temp = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
        temp.mkdir(parents=True, exist_ok=True)
        similarity = _candidate_jaccard(
            con, text, MinHasher(config.num_perm, config.shingle, config.seed),
            numbered.column("lk").to_numpy(), numbered.column("rk").to_numpy(), temp)
        pq.write_table(pa.table({"l": numbered.column("l"), "r": numbered.column("r"),
                                 "similarity": similarity, "same": numbered.column("same")}),
                       path)
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
    return path


def near_mark(store_at, data_ref: str, name: str, config, resources, hosts, key: str,
              index: int, count: int, out: str, dups_file: str,
              facts: dict[str, Any], ranges: dict | None = None) -> dict[str, Any]:
    """Phase 5 on a worker: the local step's marking, pair policy and keep/reject for one
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


def run_near_dedup_phased(ph: Phases):
    """The driver: signatures, exact duplicates, buckets, clusters, marking, the merge."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from thinkforge.manifests.duck import connect, parquet_source
    from thinkforge.manifests.partitions import position_ranges

    from .base import require_kind
    from .dedup import lsh_params
    from .minhash import connected_components

    data, config = ph.inputs["data"], ph.config
    require_kind(data, "prompts", "sft", "rl_pool", role="data")
    if not config.near or data.kind not in _PROMPT_KEY:
        return None
    key = _PROMPT_KEY[data.kind]
    common = (ph.store_at, data.ref, config, ph.resources, ph.hosts)
    # one document per row (prompts): each task reads its own run of rows, not every row
    ranges = position_ranges(ph.store, {data.ref: key}, ph.count) or [{}] * ph.count
    firsts = ph.map("signatures", near_signatures,
                    [(*common, key, i, ph.count, str(ph.out), ranges[i]) for i in range(ph.count)])
    exact_file = str(ph.out / "exact.parquet")
    con = connect(threads=threads_here(ph.hosts))
    try:
        con.execute(f"""
            COPY (SELECT id, rep FROM (
                    SELECT id, min(id) OVER (PARTITION BY grp, norm_key) AS rep
                    FROM {parquet_source([f['docs'] for f in firsts])}
                    WHERE norm_key IS NOT NULL) WHERE id <> rep)
            TO '{exact_file}' (FORMAT parquet)""")
        found = ph.map("buckets", near_buckets,
                       [(*common, i, ph.count, str(ph.out), [f["bands"] for f in firsts],
                         [f["docs"] for f in firsts], exact_file) for i in range(ph.count)])
        # a pair two bands found (in two tasks) counts once, as locally
        same = "AND same" if data.kind == "sft" and config.on == "output" else ""
        candidates, verified = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE similarity >= ? {same}) FROM "
            f"(SELECT DISTINCT l, r, similarity, same FROM {parquet_source(found)})",
            [config.threshold]).fetchall()[0]
        con.execute(f"CREATE TEMP TABLE edges AS SELECT DISTINCT l, r, similarity FROM "
                    f"{parquet_source(found)} WHERE similarity >= ? {same}", [config.threshold])
        nodes = con.sql("SELECT id FROM (SELECT l AS id FROM edges UNION SELECT r FROM edges) "
                            "ORDER BY id").to_arrow_table().column("id")
        con.register("nodes", pa.table({"id": nodes, "n": np.arange(len(nodes))}))
        ends = con.execute("SELECT a.n, b.n, e.similarity FROM edges e JOIN nodes a ON a.id = e.l "
                           "JOIN nodes b ON b.id = e.r").fetchnumpy()
        left, right, similarity = (ends[c] for c in ends)
        left, right = left.astype(np.int64), right.astype(np.int64)
        label = connected_components(len(nodes), left, right)
        linked = np.flatnonzero(label != np.arange(len(nodes)))
        best = np.zeros(len(nodes))
        np.maximum.at(best, left, similarity)
        np.maximum.at(best, right, similarity)
        ids = nodes.to_numpy(zero_copy_only=False)
        dups_file = str(ph.out / "dups.parquet")
        con.register("near_in", pa.table({"id": pa.array(ids[linked], pa.string()),
                                          "rep": pa.array(ids[label[linked]], pa.string()),
                                          "similarity": pa.array(best[linked], pa.float64())}))
        con.execute(f"COPY (SELECT id, rep, 'exact_duplicate' AS reason, NULL::DOUBLE AS "
                    f"similarity FROM {parquet_source([exact_file])} UNION ALL SELECT id, rep, "
                    f"'near_duplicate', similarity FROM near_in) TO '{dups_file}' (FORMAT parquet)")
        exact = pq.ParquetFile(exact_file).metadata.num_rows
    finally:
        con.close()
    bands, rows = lsh_params(config)
    facts = {"data": data.ref, "exact_duplicates": exact, "near_duplicates": int(len(linked)),
             "candidate_pairs": int(candidates), "verified_pairs": int(verified),
             "lsh_bands": bands, "lsh_rows": rows}
    parts = ph.map("mark", near_mark, [(ph.store_at, data.ref, ph.name, config, ph.resources,
                                        ph.hosts, key, i, ph.count, str(ph.out), dups_file, facts,
                                        ranges[i]) for i in range(ph.count)])
    return merge_partitions(ph.store, parts, ph.resources)


def _finish(provenance: dict[str, Any], parts: list[dict[str, Any]]) -> None:
    """Near dedup: the driver's counts replace the partitions' sums (the rest adds up)."""
    facts = (parts[0].get("partials") or {}).get("facts")
    if facts:
        provenance.update(facts)


PHASED["dedup"] = run_near_dedup_phased
FINISH["filter.dedup"] = _finish
