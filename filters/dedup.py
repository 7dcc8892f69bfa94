"""Exact and near-duplicate removal (docs/filters.md): normalised-text hash, then MinHash + LSH.

* **exact**: rows whose normalised text (lower case, words only, single spaces; see
  ``text.py``) is identical; the row with the smallest ``id`` is kept.
* **near**: among the rows left, word ``shingle``-grams -> MinHash signatures (``num_perm``
  hashes, vectorised numpy, ``minhash.py``) -> LSH bands chosen for ``threshold`` with
  missed pairs weighted ``false_negative_weight`` (recall first: every candidate is
  verified).  Rows that share a band are candidate pairs (all pairs in a bucket of up to 32
  rows, each row with the bucket's smallest otherwise); a pair is a duplicate when the
  exact Jaccard of the two shingle sets is >= ``threshold`` (``minhash.ShingleSets``; the
  words of the candidate rows are read again).  Duplicates form clusters (connected
  components) and the smallest ``id`` of each cluster is kept.

Every removed row is in rejected/ with ``reason`` ``exact_duplicate`` or
``near_duplicate``, ``duplicate_of`` (the id that was kept) and, for near duplicates,
``similarity`` (the exact Jaccard of its best verified pair).

``sft`` versions hold an ON and an OFF answer per prompt and sample (one ``pair_id``),
both with the same ``input``, so rows are not compared as they are:

* ``on: input`` compares *prompts*: one document per ``prompt_id``; of two duplicated
  prompts the one with the larger ``prompt_id`` loses all its rows (both rows of every
  pair), ``duplicate_of`` names the kept ``prompt_id``;
* ``on: output`` compares answers within the same reasoning mode only (an ON answer is
  never the duplicate of an OFF one), and the pair policy (``pairs``, default
  ``drop-whole``, ``filters/pairs.py``) rejects the partner of a dropped row as
  ``pair_partner:<mode>:<reason>``.

Out of core: DuckDB streams the word hashes in batches; signatures live one batch at a time
(only their band keys are kept, in Parquet in the spill directory) and DuckDB finds the
shared buckets; the shingle sets held at once are those of the candidate rows.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, model_validator
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import quote_literal
from thinkforge.manifests.schemas import ROW_KEYS, schema_for

from .base import Resources, StepConfig, StepContext, declare_filter, require_kind, row_order, run_step, source
from .minhash import (
    MinHasher,
    ShingleSets,
    SortedShingleSets,
    band_keys,
    connected_components,
    optimal_bands,
    warm_up,
)
from .pairs import PAIRS_FIELD_HELP, PairPolicy, apply_pair_policy, pair_facts, resolve_policy
from .text import (
    normalized_expr,
    pre_key_expr,
    register,
    sketch_expr,
    sketch_whole_expr,
    text_expr,
    word_hash_batches,
    word_hashes_expr,
)

BATCH_ROWS = 100_000
ALL_PAIRS_UP_TO = 32


class DedupConfig(StepConfig):
    exact: bool = Field(True, description="remove rows with identical normalised text")
    near: bool = Field(True, description="remove near duplicates (MinHash + LSH)")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of word shingles "
                                                          "at or above which rows are duplicates")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations")
    false_negative_weight: float = Field(
        0.9, gt=0, lt=1, description="weight of missed pairs against extra candidates when "
                                     "choosing the LSH bands (datasketch's weights = (1 - w, w)); "
                                     "candidates are verified exactly, so above 0.5 buys recall "
                                     "with time, not precision")
    shingle: int = Field(5, ge=1, le=32, description="words per shingle")
    on: Literal["input", "output"] = Field("input", description="which text to compare")
    seed: int = Field(1, description="seed of the MinHash functions")
    pairs: PairPolicy | None = Field(None, description=PAIRS_FIELD_HELP)

    @model_validator(mode="after")
    def _needs_a_method(self) -> DedupConfig:
        if not (self.exact or self.near):
            raise ValueError("nothing to do: enable exact and/or near")
        return self


def run_dedup(store: DatasetStore, data: Manifest, name: str, config: DedupConfig | None = None,
              resources: Resources | None = None) -> Manifest:
    """Keep one row per group of duplicates of ``data`` (a version whose rows have an ``id``)."""
    config = config or DedupConfig()
    require_kind(data, "prompts", "sft", "rl_pool", role="data")
    columns = schema_for(data.kind).names
    text = text_expr(config.on, columns)
    paired = "pair_id" in columns
    per_prompt = paired and config.on == "input"   # sft: one document per prompt
    by_mode = paired and config.on == "output"     # sft: answers compared within a mode
    policy = resolve_policy(config.pairs, columns)

    def body(ctx: StepContext) -> None:
        con = ctx.con
        if config.near:
            warm_up()  # numba's start-up overlaps the numbering and the first batch
        register(con)
        doc_views(con, store, data, per_prompt, by_mode)
        ctx.progress.phase("numbering rows")
        # exact without near: the pre-key is the sketch (a text's ends only: long outputs
        # stay cheap); with near: the hash of the word list, in the pass over the words
        sketch = config.exact and not config.near
        con.execute(f"CREATE TEMP TABLE docs AS SELECT (row_number() OVER (ORDER BY id) - 1)"
                    f"::BIGINT AS idx, id, grp{f', {sketch_expr(text)} AS wkey' if sketch else ''} "
                    "FROM doc_src")
        if sketch and _count(con, "docs WHERE wkey IS NULL"):
            # texts whose ends are mostly separators: their sketch from the whole text
            con.execute(f"UPDATE docs SET wkey = w.sketch FROM (SELECT s.id, "
                        f"{sketch_whole_expr(text)} AS sketch FROM doc_src s SEMI JOIN docs d "
                        "ON d.id = s.id AND d.wkey IS NULL) w WHERE docs.id = w.id")
        bands = _signatures(ctx, text, config) if config.near else None
        ctx.progress.phase("exact duplicates")
        keyed = ("docs" if bands is None else
                 f"(SELECT d.*, k.wkey FROM docs d JOIN {bands['keys']} k USING (idx))")
        # the exact key (md5 of the normalised text) only for rows whose pre-key another
        # row of their group shares: a row with a pre-key of its own has no exact duplicate
        con.execute(f"CREATE TEMP TABLE cand AS {exact_candidates_sql(keyed, 'idx')}"
                    if config.exact else "CREATE TEMP TABLE cand (idx BIGINT)")
        con.execute(f"CREATE TEMP TABLE dups AS SELECT idx, min(idx) OVER (PARTITION BY grp, "
                    f"norm_key) AS rep, 'exact_duplicate' AS reason, NULL::DOUBLE AS similarity "
                    f"FROM (SELECT d.idx, d.grp, md5({normalized_expr(text)}) AS norm_key "
                    f"FROM doc_src s JOIN (SELECT d.idx, d.id, d.grp FROM docs d SEMI JOIN cand c "
                    f"USING (idx)) d ON s.id = d.id)")
        con.execute("DELETE FROM dups WHERE idx = rep")
        facts = {"data": data.ref, "exact_duplicates": _count(con, "dups")}
        if bands is not None:
            facts.update(_near(ctx, text, config, by_mode, bands["bands"]))
        doc_key = "prompt_id" if per_prompt else "id"
        marks = ("SELECT x.id AS doc, d.reason, k.id AS duplicate_of, d.similarity FROM dups d "
                 "JOIN docs x ON x.idx = d.idx JOIN docs k ON k.idx = d.rep")
        if per_prompt:
            facts["unit"] = "prompt"
        facts.update(keep_unique(ctx, data, columns, policy, marks, doc_key))
        ctx.provenance.update(facts)

    return run_step(store, name=name, kind=data.kind, step_type="filter.dedup", config=config,
                    inputs=[data], body=body, resources=resources)


def doc_views(con, store: DatasetStore, data: Manifest, per_prompt: bool, by_mode: bool) -> None:
    """Views ``src`` (the rows) and ``doc_src`` (the documents compared: one per prompt, or
    one per row with its group: the mode when pairs are compared by output)."""
    con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM {source(store, data)}")
    if per_prompt:
        con.execute("CREATE TEMP VIEW doc_src AS SELECT prompt_id AS id, arg_min(input, id) "
                    "AS input, '' AS grp FROM src GROUP BY prompt_id")
    else:
        con.execute("CREATE TEMP VIEW doc_src AS SELECT *, "
                    f"{'reasoning' if by_mode else chr(39) * 2} AS grp FROM src")


def keep_unique(ctx: StepContext, data: Manifest, columns: list[str], policy: str, marks: str,
                doc_key: str) -> dict:
    """Keep / reject the rows of the ``src`` view given ``marks`` (``doc``, ``reason``,
    ``duplicate_of``, ``similarity`` per duplicate document; ``doc`` matches ``src.<doc_key>``),
    with the pair policy; returns the pair facts for the provenance.

    The marks and the pair policy's window run over a narrow table (row key, pair, mode,
    marks), never over the wide rows: at 33M rows the window over every column did not fit
    a 2 GiB memory limit.  The wide rows are joined back only to copy them."""
    con = ctx.con
    keys = list(ROW_KEYS[data.kind])
    # the input's own stored columns (a selection's) travel with the narrow rows: a
    # selection of it stores them again
    inherited = list(data.selection.columns) if data.selection is not None else []
    narrow = list(dict.fromkeys([*keys, *(c for c in ("pair_id", "reasoning") if c in columns),
                                 *inherited]))
    carry = ("duplicate_of", "similarity")
    con.execute(f"CREATE TEMP TABLE __marked AS SELECT {', '.join('s.' + c for c in narrow)}, "
                f"m.reason, m.duplicate_of, m.similarity FROM src s LEFT JOIN ({marks}) m "
                f"ON m.doc = s.{doc_key}")
    con.execute("CREATE TEMP TABLE __decided AS "
                + apply_pair_policy("__marked", narrow, policy, carry))
    con.execute("CREATE TEMP VIEW decided AS SELECT s.*, d.reason, d.duplicate_of, d.similarity, "
                "d.pair_failed_id FROM src s JOIN __decided d ON "
                + " AND ".join(f"s.{k} = d.{k}" for k in keys))
    ctx.keep_reject("decided", columns, order=row_order(data), rejected_order=("id", "id"),
                    narrow="__decided",
                    extra=(*carry, *(("pair_failed_id",) if policy != "independent" else ())))
    return pair_facts(con, "__marked", "SELECT * FROM __decided", narrow, policy)


def _count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def _signatures(ctx: StepContext, text: str, config: DedupConfig) -> dict[str, str]:
    """One pass over every document's words: its MinHash band keys (``bands``: idx, band,
    key; none for a document without words) and, with ``exact``, its pre-key (``keys``:
    idx, wkey); both Parquet in the spill directory, as ``read_parquet`` sources.

    DuckDB splits each text once for both (common subexpression); exact duplicates get
    signatures too (they leave before the buckets are grouped): a second pass over the
    text for the exact key alone cost more than their signatures."""
    con = ctx.con
    bands, rows = lsh_params(config)
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
    spill.mkdir(parents=True, exist_ok=True)
    hasher = MinHasher(config.num_perm, config.shingle, config.seed)
    band_path, key_path = spill / "bands.parquet", spill / "keys.parquet"
    ctx.progress.phase("MinHash signatures", rows=_count(con, "docs"))
    wkey = pre_key_expr(text) if config.exact else "NULL::UBIGINT"
    batches = word_hash_batches(
        con, f"SELECT d.idx, {wkey} AS wkey, {word_hashes_expr(text)} AS words "
        "FROM doc_src s JOIN docs d ON d.id = s.id", BATCH_ROWS)
    schema = pa.schema([("idx", pa.int64()), ("band", pa.int16()), ("key", pa.uint64())])
    key_schema = pa.schema([("idx", pa.int64()), ("wkey", pa.uint64())])
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(pq.ParquetWriter(band_path, schema, use_dictionary=False))
        keys_out = (stack.enter_context(pq.ParquetWriter(key_path, key_schema))
                    if config.exact else None)
        for batch, words in batches:
            idx = batch.column(0).to_numpy()
            if keys_out is not None:
                keys_out.write_table(pa.table([batch.column(0), batch.column(1)],
                                              schema=key_schema))
            sig = hasher.signatures(words)
            ctx.progress.advance(len(idx))
            keys = band_keys(sig, bands, rows)
            empty = (sig == np.iinfo(np.uint32).max).all(axis=1)  # no words: nothing to compare
            idx, keys = idx[~empty], keys[~empty]
            out.write_table(pa.table({
                "idx": np.repeat(idx, bands), "band": np.tile(np.arange(bands, dtype=np.int16), len(idx)),
                "key": keys.reshape(-1)}, schema=schema))
    return {"bands": f"read_parquet({quote_literal(str(band_path))})",
            "keys": f"read_parquet({quote_literal(str(key_path))})"}


def _near(ctx: StepContext, text: str, config: DedupConfig, by_mode: bool,
          band_src: str) -> dict:
    """Add near duplicates of the exact survivors to ``dups`` from the band keys in
    ``band_src`` (``_signatures``); return facts for provenance."""
    con = ctx.con
    n = _count(con, "docs")
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
    hasher = MinHasher(config.num_perm, config.shingle, config.seed)
    ctx.progress.phase("LSH candidate pairs")
    con.execute(f"CREATE TEMP TABLE members AS {shared_members_sql(band_src, 'dups', 'idx')}")
    pairs = con.execute(candidate_pairs_sql("members", "idx")).fetchnumpy()
    con.execute("DROP TABLE members")
    left, right = pairs["l"].astype(np.int64), pairs["r"].astype(np.int64)
    candidates = len(left)
    if by_mode:  # sft answers: an ON answer is never the duplicate of an OFF one
        groups = con.execute("SELECT grp FROM docs ORDER BY idx").fetchnumpy()["grp"]
        same = groups[left] == groups[right]
        left, right = left[same], right[same]
    ctx.progress.phase("exact Jaccard of candidates")
    similarity = _candidate_jaccard(con, text, hasher, left, right, spill)
    keep = similarity >= config.threshold
    left, right, similarity = left[keep], right[keep], similarity[keep]
    label = connected_components(n, left, right)
    linked = np.flatnonzero(label != np.arange(n))
    # the similarity reported for a row: its best verified pair
    best = np.zeros(n)
    np.maximum.at(best, left, similarity)
    np.maximum.at(best, right, similarity)
    con.register("near_dups", pa.table({"idx": linked, "rep": label[linked],
                                        "similarity": best[linked]}))
    con.execute("INSERT INTO dups SELECT idx, rep, 'near_duplicate', similarity FROM near_dups")
    bands, rows = lsh_params(config)
    return {"near_duplicates": int(len(linked)), "candidate_pairs": candidates,
            "verified_pairs": int(keep.sum()), "lsh_bands": bands, "lsh_rows": rows}


def lsh_params(config: DedupConfig) -> tuple[int, int]:
    """(bands, rows) for the config: optimal for its threshold and false-negative weight."""
    return optimal_bands(config.threshold, config.num_perm, config.false_negative_weight)


def candidate_pairs_sql(bucket_src: str, key: str) -> str:
    """SQL: the distinct candidate pairs (``l`` < ``r``, as ``key``) of the LSH buckets in
    ``bucket_src`` (``key``, band, band key): every pair of a bucket of up to
    ``ALL_PAIRS_UP_TO`` rows, each row with the bucket's smallest otherwise (a bucket of
    thousands of copies would make millions of pairs; one edge each links the cluster)."""
    return f"""
        WITH buckets AS (SELECT band, key, count(*) AS size, min({key}) AS first
                         FROM {bucket_src} GROUP BY band, key HAVING count(*) > 1),
             members AS (SELECT b.{key}, k.band, k.key, k.size, k.first
                         FROM {bucket_src} b JOIN buckets k USING (band, key))
        SELECT DISTINCT a.{key} AS l, b.{key} AS r FROM members a JOIN members b
          ON a.band = b.band AND a.key = b.key AND a.{key} < b.{key}
         WHERE a.size <= {ALL_PAIRS_UP_TO}
        UNION
        SELECT first AS l, {key} AS r FROM members WHERE size > {ALL_PAIRS_UP_TO} AND {key} <> first"""


def exact_candidates_sql(docs: str, key: str, carry: tuple[str, ...] = ()) -> str:
    """SQL: the ``key`` (and the ``carry`` columns of ``docs``: "grp", "wkey", ...) of each
    document of ``docs`` (``key``, ``grp``, ``wkey``: the pre-key, ``pre_key_expr``) whose
    (group, pre-key) another document shares: only these can have an exact duplicate
    (equal normalised texts have equal pre-keys), so only these need the exact key (md5
    of the normalised text, a second pass over their text)."""
    read = ", ".join(dict.fromkeys([key, "grp", "wkey", *carry]))
    return (f"WITH k AS (SELECT {read} FROM {docs}) SELECT {', '.join([key, *carry])} FROM k "
            "SEMI JOIN (SELECT grp, wkey FROM k GROUP BY grp, wkey HAVING count(*) > 1) "
            "USING (grp, wkey)")


def shared_members_sql(bands: str, exact: str, key: str) -> str:
    """SQL: the rows (``key``, band, key) of ``bands`` in a bucket that another row shares,
    less the exact duplicates (``exact``'s ``key``): the members of a bucket shared after
    the duplicates leave are members of one shared before, so ``candidate_pairs_sql`` over
    these makes the pairs it makes over the band rows of the survivors (most band keys are
    their bucket's only one: the anti join meets a small share of them)."""
    return f"""
        SELECT b.{key}, b.band, b.key FROM {bands} b
        SEMI JOIN (SELECT band, key FROM {bands} GROUP BY band, key HAVING count(*) > 1)
          USING (band, key)
        ANTI JOIN {exact} e ON e.{key} = b.{key}"""


def _candidate_jaccard(con, text: str, hasher: MinHasher, left: np.ndarray,
                       right: np.ndarray, spill: Path) -> np.ndarray:
    """The exact Jaccard of the shingle sets of each candidate pair: the words of just the
    documents in a pair are read again (a small share of the rows; keeping every row's
    shingles from the signature pass would cost more than the signatures).  With numba the
    sets go to block files in the spill directory (``SortedShingleSets``: 8 bytes a shingle,
    two blocks in memory); templated prompts make millions of candidate pairs at 33M rows."""
    need = np.unique(np.r_[left, right])
    if not len(need):
        return np.zeros(0)
    blocks = Path(tempfile.mkdtemp(prefix="shingles-", dir=spill)) \
        if SortedShingleSets.compiled() else None
    try:
        sets = SortedShingleSets(len(need), hasher.shingle, blocks) if blocks else None
        con.register("__need", pa.table({"idx": need}))
        grams, docs = [], []
        for batch, words in word_hash_batches(
                con, f"SELECT d.idx, {word_hashes_expr(text)} AS words FROM doc_src s JOIN docs d "
                "ON d.id = s.id SEMI JOIN __need x ON x.idx = d.idx", BATCH_ROWS):
            at = np.searchsorted(need, batch.column(0).to_numpy())
            if sets is not None:
                sets.add(at, words)
            else:
                g, doc = hasher.shingles(words)
                grams.append(g)
                docs.append(at[doc])
        con.unregister("__need")
        if sets is None:
            sets = ShingleSets(np.concatenate(grams), np.concatenate(docs), len(need))
        return sets.jaccard(np.searchsorted(need, left), np.searchsorted(need, right))
    finally:
        if blocks is not None:
            shutil.rmtree(blocks, ignore_errors=True)


STEP = declare_filter(
    "dedup", run_dedup, config=DedupConfig, kinds=("prompts", "sft", "rl_pool"),
    help="Remove exact and near-duplicate rows, keeping the smallest id of each group.",
    examples=("thinkforge filter dedup gsm8k --name gsm8k-dedup",
              "thinkforge filter dedup gsm8k-sft --on output --threshold 0.7 --name sft-dedup"))
