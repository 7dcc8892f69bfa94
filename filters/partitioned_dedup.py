"""Near dedup (MinHash + LSH) split across Dask workers by band hash (issue 12 item 3).

LSH buckets cross any partition of the rows, so the local step (``filters/dedup.py``) is
split where its data changes hands:

1. **signatures** (one task per partition of the rows: by position, each task its own row
   groups, when a row is a document (``id`` of prompts / rl_pool); by prompt id hash for sft):
   one pass over each document's words gives the MinHash signature, its band keys and the
   exact *pre*-key (DuckDB's hash of the normalised word list); two narrow Arrow files:
   documents (id, group, pre-key, number ``n``) and band keys (n, band, key; none for a
   document without words), the latter already split by bucket task (``key % count``).
   Phases 3-6 join documents by number (integers: the id strings cost half of them).
2. **exact by pre-key** (the driver): the documents whose (group, pre-key) another one
   shares are the exact candidates; those that are not the smallest id of their group
   are the exact duplicates (equal texts have equal pre-keys), checked in step 5.
3. **pairs** (one task per bucket file): every copy of a bucket meets in one task, which
   makes the local candidate pairs of the rows left after the exact duplicates (all pairs
   of a bucket of up to 32 rows, each row with the bucket's smallest id otherwise; by
   number, unordered), written split by ``hash(l, r)``; only the band rows whose key
   repeats are grouped (``minhash.maybe_shared``).
4. **sets** (one task per run of rows, cut where rows + pair members weigh alike,
   ``_sets_split``; by key hash as in 1 for sft): one read of the texts of its own
   documents that are exact candidates (their md5 of the normalised text: the local exact
   key) or in a pair (their sorted shingle sets, to files): no task reads every row.
5. **md5 check** (the driver, while the verify tasks run): the exact duplicates by md5,
   as the local step finds them, must be those of step 2; if not (two texts with one
   64-bit pre-key), steps 3, 4 and 6 run again without them.
6. **verify** (one task per pair hash): a pair found in several bands (of both pair tasks)
   is verified once: the exact Jaccard of its two shingle sets (memory-mapped), as locally.
7. **clusters** (the driver): the verified pairs (>= threshold, same group), connected
   components (``minhash.connected_components``) over the rows they touch, the smallest id
   of each cluster kept; one narrow table (id, representative, reason, similarity).
8. **mark** (one task per row partition): the local step's last part (marking, the pair
   policy, keep/reject) against that table; ``partitioned.merge_partitions`` writes ONE
   version: the local bytes, fingerprint and provenance (the driver's counts).

Documents are ids (``idx`` locally is the row number in id order: the same minima).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from thinkforge.manifests.partitions import PHASED, Phases, threads_here

from .near_dedup_tasks import (
    _BLOCK_BITS,
    _PART_BITS,
    _arrow_rows,
    near_mark,
    near_pairs,
    near_sets,
    near_signatures,
    near_verify,
)
from .partitioned import _PROMPT_KEY, FINISH, merge_partitions

# a pair member's cost in the sets phase, in documents only read: its words, shingle set
# and write (~4.8 us, one thread) against ~0.6 us a row of the scan (measured at 600k)
_MEMBER_WEIGHT = 8


def run_near_dedup_phased(ph: Phases):
    """The driver: signatures, exact duplicates by pre-key, pairs, texts (md5 + shingle
    sets), the md5 check, verification, clusters, marking, the merge."""
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
    docs = [f["docs"] for f in firsts]
    cand_file, exact_file = _exact_by_pre_key(ph, config, docs)

    def pairs_and_sets(exact: str, cand: str | None):
        made = ph.map("pairs", near_pairs,
                      [(*common, j, ph.count, str(ph.out), [f["bands"][j] for f in firsts],
                        exact, docs) for j in range(ph.count)])
        pairs = [m["pairs"] for m in made]
        every = [path for p in pairs for path in p]
        split = _sets_split(ranges, data.ref, [b for m in made for b in m["blocks"]], ph.count)
        sets = ph.map("sets", near_sets, [(*common, key, i, ph.count, str(ph.out), cand, every,
                                           [docs[p] for p in parts], parts, own)
                                          for i, (own, parts) in enumerate(split)])
        return pairs, sets

    def verify(pairs, sets):
        return ph.submit("verify", near_verify, [(*common, i, ph.count, str(ph.out),
                                                  [p[i] for p in pairs], sets)
                                                 for i in range(ph.count)])

    pairs, sets = pairs_and_sets(exact_file, cand_file)
    found = verify(pairs, sets)  # while the driver checks the md5 (its pairs stand, but
    if cand_file is not None:    # for a 64-bit collision of pre-keys)
        checked = _exact_by_md5(ph, cand_file, [s["md5"] for s in sets], exact_file)
        if checked != exact_file:  # a pre-key shared by two texts: the pairs without it
            exact_file = checked
            found = verify(*pairs_and_sets(exact_file, None))  # the first ones unread
    found = ph.client.gather(found)
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


def _sets_split(ranges: list[dict], ref: str, blocks: list[tuple[int, int]],
               count: int) -> list[tuple[dict, list[int]]]:
    """The sets phase's ``count`` tasks: (position runs, signature parts they touch).

    By position (``ranges``): cut where the weight, a row 1 and a pair member
    ``_MEMBER_WEIGHT`` more, splits evenly (the pairs tasks' ``blocks``; a document in
    pairs of two tasks counts twice), so no worker waits on another's members: near
    copies of earlier rows put ~2x the members in the first half (95k vs 51k at 600k,
    sets 0.96 vs 0.53 s in the cluster).  Block ``b`` of part ``p`` is taken to be rows
    ``b * 2^_BLOCK_BITS`` on of ``p``'s run (its documents are numbered as they are
    read); that guess only weighs: the tasks find their documents by id.  Else (split
    by key hash) the signature tasks' partitions."""
    if not ranges[0]:
        return [({}, [i]) for i in range(count)]
    runs = [r for part in ranges for r in part[ref]]  # every position once, in order
    sizes = [sum(e - f for _, f, e in part[ref]) for part in ranges]
    starts = np.cumsum([0] + sizes)
    # the weight of each block (2^_BLOCK_BITS rows of a part; a part's last one shorter)
    at = [(p, b) for p in range(count) for b in range(0, sizes[p], 1 << _BLOCK_BITS)]
    edges = np.array([int(starts[p]) + b for p, b in at] + [int(starts[-1])], dtype=np.int64)
    weight = np.diff(edges).astype(np.float64)
    block_of = {(p, b >> _BLOCK_BITS): k for k, (p, b) in enumerate(at)}
    low = (1 << (_PART_BITS - _BLOCK_BITS)) - 1
    for number, members in blocks:
        k = block_of.get((int(number) >> (_PART_BITS - _BLOCK_BITS), int(number) & low))
        if k is not None:
            weight[k] += _MEMBER_WEIGHT * members
    total = np.concatenate([[0.0], np.cumsum(weight)])
    cuts = [0]
    for i in range(1, count):  # the position where the weight reaches i / count of it
        goal = total[-1] * i / count
        k = min(int(np.searchsorted(total, goal, side="right")) - 1, len(weight) - 1)
        share = (goal - total[k]) / weight[k] if weight[k] else 0.0
        cuts.append(max(cuts[-1], int(edges[k] + round(share * (edges[k + 1] - edges[k])))))
    cuts.append(int(starts[-1]))
    out = []
    for i in range(count):
        own, pos = [], 0
        for shard, f, e in runs:  # the part of [cuts[i], cuts[i + 1]) in each run
            a, b = max(cuts[i], pos), min(cuts[i + 1], pos + e - f)
            if a < b and own and own[-1][0] == shard and own[-1][2] == f + a - pos:
                own[-1] = (shard, own[-1][1], f + b - pos)  # two parts' runs of one shard
            elif a < b:
                own.append((shard, f + a - pos, f + b - pos))
            pos += e - f
        parts = [p for p in range(count) if starts[p] < cuts[i + 1] and cuts[i] < starts[p + 1]]
        out.append(({ref: own}, parts or [i]))
    return out


_EXACT = "COPY (SELECT id, rep, n FROM (SELECT id, n, min(id) OVER (PARTITION BY grp, {by}) " \
         "AS rep FROM {src}) WHERE id <> rep) TO '{path}' (FORMAT parquet)"


def _exact_by_pre_key(ph: Phases, config, docs_files: list[str]) -> tuple[str | None, str]:
    """(candidates, exact duplicates) by the pre-key: the documents whose (group, ``wkey``)
    another one shares (``cand``: id, grp, wkey, n; None without ``exact``) and, of each
    such group, those that are not its smallest id (id, rep, n).  Equal texts have equal pre-keys,
    so these are the local exact duplicates unless two texts share a 64-bit pre-key:
    ``_exact_by_md5`` checks that against the local exact key before anything is kept."""
    import pyarrow as pa
    from thinkforge.manifests.duck import connect, parquet_source

    from .dedup import exact_candidates_sql
    from .minhash import maybe_shared

    exact_file = str(ph.out / "exact-pre.parquet")
    con = connect(threads=threads_here(ph.hosts))
    try:
        if not config.exact:
            con.execute(f"COPY (SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS rep, NULL::BIGINT "
                        f"AS n WHERE false) TO '{exact_file}' (FORMAT parquet)")
            return None, exact_file
        cand_file = str(ph.out / "exact-candidates.parquet")
        # most pre-keys are their document's own: the GROUP BY gets only those that repeat
        docs = _arrow_rows(docs_files)
        wkey = docs.column("wkey").fill_null(0).to_numpy()  # NULL: one key more (kept)
        con.register("repeated", docs.filter(pa.array(maybe_shared(wkey))))
        cands = exact_candidates_sql("repeated", "id", ("grp", "wkey", "n"))
        con.execute(f"COPY ({cands}) TO '{cand_file}' (FORMAT parquet)")
        con.execute(_EXACT.format(by="wkey", src=parquet_source([cand_file]), path=exact_file))
    finally:
        con.close()
    return cand_file, exact_file


def _exact_by_md5(ph: Phases, cand_file: str, md5_files: list[str], pre_file: str) -> str:
    """The exact duplicates as the local step finds them (the smallest id of each (group,
    md5 of the normalised text) kept), from the ``near_sets`` tasks' md5 of every
    candidate: ``pre_file`` when they are the same rows (always, but for a 64-bit
    collision of pre-keys), else a file of them."""
    from thinkforge.manifests.duck import connect, parquet_source

    exact_file = str(ph.out / "exact-md5.parquet")
    con = connect(threads=threads_here(ph.hosts))
    try:
        keyed, cands = (con.execute(f"SELECT count(*) FROM {parquet_source(f)}").fetchall()[0][0]
                        for f in (md5_files, [cand_file]))
        if keyed != cands:
            raise RuntimeError(f"near dedup: {keyed} md5 keys for {cands} exact candidates "
                               f"({ph.out}): a row partition lost or repeated rows")
        con.execute(_EXACT.format(by="norm_key", src=parquet_source(md5_files), path=exact_file))
        differ = con.execute(
            f"SELECT count(*) FROM ((SELECT * FROM {parquet_source([exact_file])} EXCEPT ALL "
            f"SELECT * FROM {parquet_source([pre_file])}) UNION ALL (SELECT * FROM "
            f"{parquet_source([pre_file])} EXCEPT ALL SELECT * FROM "
            f"{parquet_source([exact_file])}))").fetchall()[0][0]
    finally:
        con.close()
    return pre_file if differ == 0 else exact_file


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
        con.execute(f"CREATE TEMP TABLE edges AS SELECT l, r, ln, rn, similarity FROM "
                    f"{parquet_source(found)} WHERE similarity >= ? {same}", [config.threshold])
        # the rows the edges touch in id order (the smallest id of a cluster is kept); the
        # edges' ends found by number (numpy) rather than two joins of the id strings
        nodes = con.sql("SELECT n, id FROM (SELECT ln AS n, l AS id FROM edges UNION SELECT "
                        "rn, r FROM edges) ORDER BY id").to_arrow_table()
        ends = con.execute("SELECT ln, rn, similarity FROM edges").fetchnumpy()
        numbers = nodes.column("n").to_numpy()
        by_number = np.argsort(numbers)
        left, right = (by_number[np.searchsorted(numbers, ends[c], sorter=by_number)].astype(np.int64)
                       for c in ("ln", "rn"))
        similarity = ends["similarity"]
        label = connected_components(len(nodes), left, right)
        linked = np.flatnonzero(label != np.arange(len(nodes)))
        best = np.zeros(len(nodes))
        np.maximum.at(best, left, similarity)
        np.maximum.at(best, right, similarity)
        ids = nodes.column("id")
        con.register("near_in", pa.table({"id": ids.take(linked), "rep": ids.take(label[linked]),
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
