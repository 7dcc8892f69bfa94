"""Near dedup (MinHash + LSH) split across Dask workers by band hash (issue 12 item 3).

LSH buckets cross any partition of the rows, so the local step (``filters/dedup.py``) is
split where its data changes hands:

1. **signatures** (one task per partition of the rows: by position, each task its own row
   groups, when a row is a document (``id`` of prompts / rl_pool); by prompt id hash for sft):
   one pass over each document's words gives the MinHash signature, its band keys and the
   exact *pre*-key (DuckDB's hash of the normalised word list); two narrow outputs:
   documents (id, group, pre-key) and band keys (id, band, key; none for a document
   without words), the latter already split by bucket task (``key % count``).
2. **exact** (the driver, then one task per row partition): the documents whose (group,
   pre-key) another one shares are the candidates; each task computes the md5 of the
   normalised text (the local exact key) of the candidates among its own rows; the rows
   whose (group, md5) a smaller id shares are exact duplicates: they leave the LSH, as
   locally.
3. **pairs** (one task per bucket file): every copy of a bucket meets in one task, which
   makes the local candidate pairs (all pairs of a bucket of up to 32 rows, each row with
   the bucket's smallest id otherwise), written split by ``hash(l, r)``.
4. **verify** (one task per pair hash): a pair found in several bands (of both pair tasks)
   is verified once: the words of just the documents in its pairs are read again and
   each pair's exact Jaccard computed, as locally.
5. **clusters** (the driver): the verified pairs (>= threshold, same group), connected
   components (``minhash.connected_components``) over the rows they touch, the smallest id
   of each cluster kept; one narrow table (id, representative, reason, similarity).
6. **mark** (one task per row partition): the local step's last part (marking, the pair
   policy, keep/reject) against that table; ``partitioned.merge_partitions`` writes ONE
   version: the local bytes, fingerprint and provenance (the driver's counts).

Documents are ids (``idx`` locally is the row number in id order: the same minima).
"""

from __future__ import annotations

import contextlib
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


def _partition_docs(con, store, data, per_prompt, by_mode, partition: Partition) -> None:
    """``doc_src`` over this partition's rows only (and the text functions registered)."""
    from .dedup import doc_views
    from .text import register

    register(con)
    with running(partition):
        doc_views(con, store, data, per_prompt, by_mode)


def near_signatures(store_at, data_ref: str, config, resources, hosts, key: str, index: int,
                    count: int, out: str, ranges: dict | None = None) -> dict[str, Any]:
    """Phase 1 on a worker: one pass over the words of one row partition's documents.

    Writes the documents (id, group, ``wkey``: DuckDB's hash of the normalised word list,
    the exact-duplicate *pre*-key: equal texts have equal keys) and, per bucket task, the
    band keys (id, band, key) of its buckets (``key % count``: every copy of a bucket goes
    to one file), none for a document without words.  The word list is computed once for
    both (the md5 of the normalised text, a second pass, cost as much as the signatures:
    ``near_exact_keys`` computes it only for the documents whose ``wkey`` repeats)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .dedup import BATCH_ROWS, lsh_params
    from .minhash import MinHasher, band_keys, warm_up
    from .text import pre_key_expr, word_hash_batches, word_hashes_expr

    store, data, _, text, res, per_prompt, by_mode = _setup(store_at, data_ref, config,
                                                           resources, hosts)
    tag = f"p{index:04d}-{uuid.uuid4().hex[:8]}"  # a rerun writes afresh
    docs_path = str(Path(out) / f"docs-{tag}.parquet")
    band_paths = [str(Path(out) / f"bands-b{j:04d}-{tag}.parquet") for j in range(count)]
    bands, rows = lsh_params(config)
    hasher = MinHasher(config.num_perm, config.shingle, config.seed)
    warm_up()
    with _task_connection(store, res) as con:
        _partition_docs(con, store, data, per_prompt, by_mode,
                        Partition(count=count, index=index, keys={data.ref: key}, out=Path(out),
                                  ranges=ranges or {}))
        # DuckDB splits and normalises the text once for both lists (common subexpression)
        wkey = pre_key_expr(text) if config.exact else "NULL::UBIGINT"
        batches = word_hash_batches(con, f"SELECT s.id, s.grp, {wkey} AS wkey, "
                                         f"{word_hashes_expr(text)} AS words FROM doc_src s",
                                    BATCH_ROWS)
        doc_schema = pa.schema([("id", pa.string()), ("grp", pa.string()),
                                ("wkey", pa.uint64())])
        band_schema = pa.schema([("id", pa.string()), ("band", pa.int16()),
                                 ("key", pa.uint64())])
        with contextlib.ExitStack() as stack:
            doc_out = stack.enter_context(pq.ParquetWriter(docs_path, doc_schema))
            # no dictionary: band keys and ids hardly repeat (a third faster to write)
            band_out = [stack.enter_context(pq.ParquetWriter(p, band_schema, use_dictionary=False))
                        for p in band_paths]
            for batch, words in batches:
                ids = batch.column(0)
                doc_out.write_table(pa.table([ids, batch.column(1), batch.column(2)],
                                             schema=doc_schema))
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
                    writer.write_table(pa.table({"id": ids.take(pa.array(doc[sel])),
                                                 "band": band[sel], "key": flat[sel]},
                                                schema=band_schema))
    return {"docs": docs_path, "bands": band_paths}


def near_pairs(store_at, data_ref: str, config, resources, hosts, index: int, count: int,
               out: str, bands_files: list[str], exact_file: str) -> list[str]:
    """Phase 3 on a worker: the candidate pairs of the buckets in its band files (every
    copy of a bucket is there), as the local step makes them, in one file per verify
    task (``hash(l, r) % count``): a pair that two bands found, in two tasks here, is
    verified once."""
    from thinkforge.manifests.duck import parquet_source

    from .dedup import candidate_pairs_sql, shared_members_sql

    store, _, _, _, res, _, _ = _setup(store_at, data_ref, config, resources, hosts)
    tag = uuid.uuid4().hex[:8]
    paths = [str(Path(out) / f"pairs-p{index:04d}-v{i:04d}-{tag}.parquet") for i in range(count)]
    with _task_connection(store, res) as con:
        members = shared_members_sql(parquet_source(bands_files), parquet_source([exact_file]), "id")
        con.execute(f"CREATE TEMP TABLE mine AS {members}")
        con.execute(f"CREATE TEMP TABLE pairs AS {candidate_pairs_sql('mine', 'id')}")
        for i, path in enumerate(paths):
            con.execute(f"COPY (SELECT l, r FROM pairs WHERE hash(l, r) % {int(count)} = {i}) "
                        f"TO '{path}' (FORMAT parquet)")
    return paths


def near_verify(store_at, data_ref: str, config, resources, hosts, index: int, count: int,
                out: str, pairs_files: list[str], docs_files: list[str]) -> str:
    """Phase 4 on a worker: the exact Jaccard of its share of the candidate pairs, as the
    local step computes it (``dedup._candidate_jaccard``: the words of just the documents
    in a pair read again; writing every document's shingles in phase 1 cost more than the
    signatures)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from thinkforge.manifests.duck import parquet_source

    from .dedup import _candidate_jaccard, doc_views
    from .minhash import MinHasher, warm_up
    from .text import register

    store, data, _, text, res, per_prompt, by_mode = _setup(store_at, data_ref, config,
                                                           resources, hosts)
    path = str(Path(out) / f"verified-p{index:04d}-{uuid.uuid4().hex[:8]}.parquet")
    warm_up()
    with _task_connection(store, res) as con:
        register(con)
        con.execute(f"CREATE TEMP TABLE pairs AS SELECT DISTINCT l, r FROM "
                    f"{parquet_source(pairs_files)}")
        # the documents in a pair, numbered, with their group (answers compared within a
        # mode: whether a pair shares it); each pair as two numbers
        ids = "(SELECT l AS id FROM pairs UNION SELECT r FROM pairs)"
        grps = (f"(SELECT id, grp FROM {parquet_source(docs_files)} SEMI JOIN {ids} USING (id))"
                if by_mode else f"(SELECT id, '' AS grp FROM {ids})")
        con.execute("CREATE TEMP TABLE docs AS SELECT (row_number() OVER (ORDER BY id) - 1)"
                    f"::BIGINT AS idx, id, grp FROM {grps}")
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
    """The driver: signatures, exact duplicates, pairs, verification, clusters, marking,
    the merge."""
    import pyarrow.parquet as pq
    from thinkforge.manifests.partitions import position_ranges

    from .base import require_kind
    from .dedup import lsh_params

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
    docs_files = [f["docs"] for f in firsts]
    exact_file = str(ph.out / "exact.parquet")
    _exact(ph, config, key, ranges, docs_files, exact_file)
    pairs = ph.map("pairs", near_pairs,
                   [(*common, j, ph.count, str(ph.out), [f["bands"][j] for f in firsts],
                     exact_file) for j in range(ph.count)])
    found = ph.map("verify", near_verify,
                   [(*common, i, ph.count, str(ph.out), [p[i] for p in pairs], docs_files)
                    for i in range(ph.count)])
    dups_file = str(ph.out / "dups.parquet")
    facts = _clusters(ph, config, data.kind, found, exact_file, dups_file)
    bands, rows = lsh_params(config)
    facts = {"data": data.ref, "exact_duplicates": pq.ParquetFile(exact_file).metadata.num_rows,
             "near_duplicates": facts["near"], "candidate_pairs": facts["candidates"],
             "verified_pairs": facts["verified"], "lsh_bands": bands, "lsh_rows": rows}
    parts = ph.map("mark", near_mark, [(ph.store_at, data.ref, ph.name, config, ph.resources,
                                        ph.hosts, key, i, ph.count, str(ph.out), dups_file, facts,
                                        ranges[i]) for i in range(ph.count)])
    return merge_partitions(ph.store, parts, ph.resources)


def near_exact_keys(store_at, data_ref: str, config, resources, hosts, key: str, index: int,
                    count: int, out: str, cand_file: str, ranges: dict | None = None) -> str:
    """Phase 2 on a worker: the md5 of the normalised text (the local exact key) of the
    candidates (``cand_file``: the documents whose (group, ``wkey``) another one shares)
    among its own row partition, as the signature task split them."""
    from thinkforge.manifests.duck import parquet_source

    from .text import normalized_expr

    store, data, _, text, res, per_prompt, by_mode = _setup(store_at, data_ref, config,
                                                           resources, hosts)
    path = str(Path(out) / f"md5-p{index:04d}-{uuid.uuid4().hex[:8]}.parquet")
    with _task_connection(store, res) as con:
        _partition_docs(con, store, data, per_prompt, by_mode,
                        Partition(count=count, index=index, keys={data.ref: key}, out=Path(out),
                                  ranges=ranges or {}))
        con.execute(f"COPY (SELECT s.id, s.grp, md5({normalized_expr(text)}) AS norm_key "
                    f"FROM doc_src s SEMI JOIN {parquet_source([cand_file])} c ON c.id = s.id) "
                    f"TO '{path}' (FORMAT parquet)")
    return path


def _exact(ph: Phases, config, key: str, ranges: list[dict], docs_files: list[str],
           exact_file: str) -> None:
    """Exact duplicates (id, rep): the documents whose (group, md5 of the normalised text) a
    smaller id shares, as locally; the md5 (``near_exact_keys``, per row partition) only
    for documents whose word-list hash (``wkey``) another document of their group shares
    (equal texts have equal ``wkey``)."""
    from thinkforge.manifests.duck import connect, parquet_source

    from .dedup import exact_candidates_sql

    con = connect(threads=threads_here(ph.hosts))
    try:
        if not config.exact:
            con.execute(f"COPY (SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS rep WHERE false) "
                        f"TO '{exact_file}' (FORMAT parquet)")
            return
        cand_file = str(ph.out / "exact-candidates.parquet")
        con.execute(f"COPY ({exact_candidates_sql(parquet_source(docs_files), 'id')}) "
                    f"TO '{cand_file}' (FORMAT parquet)")
        keyed = ph.map("exact", near_exact_keys,
                       [(ph.store_at, ph.inputs["data"].ref, config, ph.resources, ph.hosts,
                         key, i, ph.count, str(ph.out), cand_file, ranges[i])
                        for i in range(ph.count)])
        con.execute(f"""
            COPY (SELECT id, rep FROM (
                    SELECT id, min(id) OVER (PARTITION BY grp, norm_key) AS rep
                    FROM {parquet_source(keyed)}) WHERE id <> rep)
            TO '{exact_file}' (FORMAT parquet)""")
    finally:
        con.close()


def _clusters(ph: Phases, config, kind: str, found: list[str], exact_file: str,
              dups_file: str) -> dict[str, int]:
    """The verified pairs' connected components, the smallest id of each kept; writes
    ``dups_file`` (id, rep, reason, similarity) with the exact duplicates."""
    import pyarrow as pa
    from thinkforge.manifests.duck import connect, parquet_source

    from .minhash import connected_components

    # each pair was verified in one task (the verify tasks split them by hash)
    same = "AND same" if kind == "sft" and config.on == "output" else ""
    con = connect(threads=threads_here(ph.hosts))
    try:
        candidates, verified = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE similarity >= ? {same}) FROM "
            f"{parquet_source(found)}", [config.threshold]).fetchall()[0]
        con.execute(f"CREATE TEMP TABLE edges AS SELECT l, r, similarity FROM "
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
        con.register("near_in", pa.table({"id": pa.array(ids[linked], pa.string()),
                                          "rep": pa.array(ids[label[linked]], pa.string()),
                                          "similarity": pa.array(best[linked], pa.float64())}))
        con.execute(f"COPY (SELECT id, rep, 'exact_duplicate' AS reason, NULL::DOUBLE AS "
                    f"similarity FROM {parquet_source([exact_file])} UNION ALL SELECT id, rep, "
                    f"'near_duplicate', similarity FROM near_in) TO '{dups_file}' (FORMAT parquet)")
    finally:
        con.close()
    return {"near": int(len(linked)), "candidates": int(candidates), "verified": int(verified)}


def _finish(provenance: dict[str, Any], parts: list[dict[str, Any]]) -> None:
    """Near dedup: the driver's counts replace the partitions' sums (the rest adds up)."""
    facts = (parts[0].get("partials") or {}).get("facts")
    if facts:
        provenance.update(facts)


PHASED["dedup"] = run_near_dedup_phased
FINISH["filter.dedup"] = _finish
