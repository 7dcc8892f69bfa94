import copy

import numpy as np
import pyarrow as pa
import pytest
from thinkforge.filters.decontam import DecontamConfig, run_decontam
from thinkforge.filters.dedup import DedupConfig, run_dedup
from thinkforge.filters.minhash import (
    MinHasher,
    ShingleSets,
    SortedShingleSets,
    connected_components,
    optimal_bands,
)
from thinkforge.manifests.selection import read_rejected, read_table  # noqa: F401


def rows_of(store, m, rejected=False):
    return (read_rejected(store, m) if rejected else read_table(store, m)).to_pylist()


def jaccard(a, b, k):
    sa = {tuple(a[i:i + k]) for i in range(len(a) - k + 1)}
    sb = {tuple(b[i:i + k]) for i in range(len(b) - k + 1)}
    return len(sa & sb) / len(sa | sb)


def test_minhash_estimates_jaccard():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 10**9, size=200).tolist()
    docs = [base, base[:150] + rng.integers(0, 10**9, size=50).tolist(), base[100:]]
    sig = MinHasher(num_perm=256, shingle=3).signatures(pa.array(docs, pa.list_(pa.uint64())))
    est = [(sig[0] == sig[1]).mean(), (sig[0] == sig[2]).mean()]
    true = [jaccard(docs[0], docs[1], 3), jaccard(docs[0], docs[2], 3)]
    assert np.allclose(est, true, atol=0.08)


def test_compiled_and_numpy_signatures_agree():
    """The numba kernel (the ``fast`` extra) and the numpy path give the same signatures,
    for empty, short (< shingle words) and long documents, and for a sliced array."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(2)
    docs = [rng.integers(0, 2**63, size=n, dtype=np.uint64).tolist()
            for n in [0, 1, 2, 4, 5, 6, 40, 0, 3] + rng.integers(0, 80, size=200).tolist()]
    words = pa.array(docs, pa.list_(pa.uint64()))
    hasher = MinHasher(num_perm=64, shingle=5, seed=3)
    for part in (words, words.slice(3, 150)):
        assert np.array_equal(hasher.signatures(part), hasher.signatures(part, compiled=False))


def test_compiled_and_numpy_band_keys_agree():
    """``band_keys`` in numba gives numpy's keys (sums mod 2^64), for every split of the
    signature and no documents."""
    pytest.importorskip("numba")
    from thinkforge.filters.minhash import band_keys

    rng = np.random.default_rng(5)
    for n in (0, 1, 777):
        sig = rng.integers(0, 2**32, size=(n, 128), dtype=np.uint32)
        for bands, rows in ((14, 9), (9, 13), (1, 128), (128, 1)):
            got = band_keys(sig, bands, rows)
            assert got.dtype == np.uint64 and got.shape == (n, bands)
            assert np.array_equal(got, band_keys(sig, bands, rows, compiled=False))


def test_maybe_shared_keeps_every_repeated_key(monkeypatch):
    """``maybe_shared`` (the filter before the pair tasks' GROUP BY): every key that repeats
    is kept, with numba (bit tables: a few single keys too) and numpy (exactly those)."""
    from thinkforge.filters import minhash

    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 50_000):
        keys = rng.integers(0, 2**64, size=n, dtype=np.uint64)
        keys[: n // 10] = keys[n // 10: n // 5]  # a tenth repeats
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        repeated = counts[inverse.reshape(-1)] > 1
        got = minhash.maybe_shared(keys)
        assert got.dtype == bool and len(got) == n and not (repeated & ~got).any()
        assert got.sum() <= repeated.sum() + n // 5
        with monkeypatch.context() as m:
            m.setattr(minhash, "_kernels", lambda: None)
            assert np.array_equal(minhash.maybe_shared(keys), repeated)


def test_sorted_sets_and_intersections_compiled_and_numpy_agree(monkeypatch):
    """The partitioned near dedup's shingle sets and their intersections: numba and numpy
    give the same arrays and counts."""
    pytest.importorskip("numba")
    from thinkforge.filters import minhash

    rng = np.random.default_rng(6)
    docs = [rng.integers(0, 50, size=n).astype(np.uint64).tolist()
            for n in [0, 1, 3, 5, 6, 30, 0] + rng.integers(0, 40, size=60).tolist()]
    words = pa.array(docs, pa.list_(pa.uint64()))
    hasher = MinHasher(num_perm=8, shingle=3)
    flat, counts = minhash.sorted_sets(hasher, words)
    starts = np.cumsum(counts) - counts
    left, right = rng.integers(0, len(docs), size=200), rng.integers(0, len(docs), size=200)
    both = minhash.set_intersections(flat, starts[left], counts[left], flat, starts[right],
                                     counts[right])
    monkeypatch.setattr(minhash, "_kernels", lambda: None)
    flat2, counts2 = minhash.sorted_sets(hasher, words)
    assert np.array_equal(flat, flat2) and np.array_equal(counts, counts2)
    assert np.array_equal(both, minhash.set_intersections(flat, starts[left], counts[left], flat,
                                                          starts[right], counts[right]))
    union = counts[left] + counts[right] - both
    assert ((both >= 0) & (both <= np.minimum(counts[left], counts[right]))).all()
    assert (union >= np.maximum(counts[left], counts[right])).all()


def test_shingle_sets_give_the_exact_jaccard():
    rng = np.random.default_rng(4)
    base = rng.integers(0, 10**9, size=60).tolist()
    docs = [base, base[:40] + rng.integers(0, 10**9, size=20).tolist(), base[10:], base + base,
            [], [], base[:3]]
    words = pa.array(docs, pa.list_(pa.uint64()))
    grams, doc = MinHasher(num_perm=8, shingle=4).shingles(words)
    left, right = np.array([0, 0, 0, 4, 1, 6, 0]), np.array([1, 2, 3, 5, 2, 0, 6])
    want = [jaccard(docs[i], docs[j], 4) if docs[i] and docs[j] else 1.0
            for i, j in zip(left, right, strict=True)]
    want[5] = want[6] = 0.0  # a 3-word document is one shingle of its 3 words: shared by none
    got = ShingleSets(grams, doc, len(docs)).jaccard(left, right, chunk=50)  # several chunks
    assert np.allclose(got, want)



def test_sorted_shingle_sets_match_shingle_sets(tmp_path):
    """The compiled, block-file sets give ShingleSets' values bit for bit: documents added
    in several batches out of order, blocks of a few documents (pairs within and across
    blocks, either side first), repeated shingles, short and empty documents."""
    if not SortedShingleSets.compiled():
        pytest.skip("numba (the fast extra) is not installed")
    rng = np.random.default_rng(5)
    base = rng.integers(0, 50, size=40).tolist()  # a 50-word vocabulary: repeated shingles
    docs = [base, base[:30] + rng.integers(0, 50, size=15).tolist(), base[5:], base + base,
            [], base[:3], base[:3], [7, 7, 7, 7, 7, 7], base[::-1], base[:4]]
    docs += [rng.integers(0, 50, size=int(rng.integers(0, 30))).tolist() for _ in range(40)]
    words = pa.array(docs, pa.list_(pa.uint64()))
    hasher = MinHasher(num_perm=8, shingle=4)
    grams, doc = hasher.shingles(words)
    left = rng.integers(0, len(docs), size=400)
    right = rng.integers(0, len(docs), size=400)
    left[:3], right[:3] = [4, 5, 0], [4, 6, 3]  # two empty sets; equal short documents
    want = ShingleSets(grams, doc, len(docs)).jaccard(left, right)
    sets = SortedShingleSets(len(docs), 4, tmp_path, block_bytes=64)
    order = rng.permutation(len(docs))
    for part in np.array_split(order, 7):
        sets.add(part, words.take(pa.array(part)))
    assert sets.blocks > 3
    got = sets.jaccard(left, right)
    assert np.array_equal(got, want) and got[0] == 1.0 and got[1] == 1.0

def test_optimal_bands_weights_match_datasketch():
    """The weighted criterion picks datasketch's (bands, rows); more weight on misses
    gives more, shorter bands (a higher candidate probability at the threshold)."""
    lsh = pytest.importorskip("datasketch.lsh")
    for threshold, perms, w in [(0.8, 128, 0.5), (0.8, 128, 0.9), (0.7, 64, 0.95), (0.9, 256, 0.8)]:
        assert optimal_bands(threshold, perms, w) == lsh._optimal_param(threshold, perms, 1 - w, w)
    b1, r1 = optimal_bands(0.8, 128, 0.5)
    b2, r2 = optimal_bands(0.8, 128, 0.9)
    assert b2 > b1 and r2 < r1


def test_connected_components_label_by_smallest():
    assert connected_components(6, np.array([4, 2, 5]), np.array([5, 1, 4])).tolist() == \
        [0, 1, 1, 3, 4, 4]


@pytest.fixture
def planted(store, gsm8k):
    rows = rows_of(store, gsm8k)[:60]
    exact = copy.deepcopy(rows[0])
    exact["id"], exact["input"][0]["content"] = "zz-exact", "  " + rows[0]["input"][0]["content"].upper()
    near = copy.deepcopy(rows[1])
    near["id"] = "zz-near"
    near["input"][0]["content"] = rows[1]["input"][0]["content"] + " Show your work."
    near2 = copy.deepcopy(near)  # a chain: near duplicate of the near duplicate
    near2["id"] = "zz-near2"
    near2["input"][0]["content"] = near["input"][0]["content"] + " Be brief."
    with store.writer("planted", "prompts", step={"type": "test"}) as w:
        w.write(rows + [exact, near, near2])
    return w.manifest, rows


def test_exact_and_near_duplicates_name_what_they_duplicate(store, planted):
    data, rows = planted
    m = run_dedup(store, data, "dedup", DedupConfig(threshold=0.7))
    rejected = {r["id"]: r for r in rows_of(store, m, rejected=True)}
    assert rejected["zz-exact"]["reason"] == "exact_duplicate"
    assert rejected["zz-exact"]["duplicate_of"] == rows[0]["id"]
    for rid in ("zz-near", "zz-near2"):
        assert rejected[rid]["reason"] == "near_duplicate"
        assert rejected[rid]["duplicate_of"] == rows[1]["id"]  # smallest id of the cluster
        assert rejected[rid]["similarity"] >= 0.7
    assert m.rows == 60 and set(rejected) == {"zz-exact", "zz-near", "zz-near2"}


def test_exact_only_and_reuse(store, planted):
    data, _ = planted
    m = run_dedup(store, data, "exact", DedupConfig(near=False))
    assert m.rejected.by_reason == {"exact_duplicate": 1}
    assert run_dedup(store, data, "exact", DedupConfig(near=False)).version == m.version
    with pytest.raises(ValueError):
        DedupConfig(exact=False, near=False)


def test_decontam_names_benchmark_and_item(store, gsm8k, data_dir):
    from thinkforge.curation.importer import ImportOptions, import_file

    test = import_file(store, data_dir / "gsm8k_test.jsonl",
                       ImportOptions(name="gsm8k-test", preset="gsm8k"))
    bench = rows_of(store, test)
    rows = rows_of(store, gsm8k)[:30]
    leak = copy.deepcopy(rows[0])
    leak["id"] = "leak"
    leak["input"][0]["content"] = "Solve this, please. " + bench[7]["input"][0]["content"]
    with store.writer("train", "prompts", step={"type": "test"}) as w:
        w.write(rows + [leak])
    math_file = data_dir / "math500_demo.jsonl"
    m = run_decontam(store, w.manifest, [test, math_file], "clean")
    rejected = {r["id"]: r for r in rows_of(store, m, rejected=True)}
    assert rejected["leak"]["benchmark"] == "gsm8k-test@v1"
    assert rejected["leak"]["matched_item"] == bench[7]["id"]
    assert rejected["leak"]["matched_ngrams"] >= 1 and rejected["leak"]["reason"] == "contaminated"
    assert "leak" not in {r["id"] for r in rows_of(store, m)}
    assert [p.name for p in m.parents] == ["train", "gsm8k-test"]
    assert m.step.config["benchmark_files"][0]["path"].endswith("math500_demo.jsonl")
    # a stricter threshold keeps a row sharing fewer n-grams
    strict = run_decontam(store, w.manifest, [test], "strict", DecontamConfig(min_matches=10**6))
    assert strict.rejected.rows == 0


def test_decontam_file_benchmark_hits_name_the_file_item(store, gsm8k, data_dir):
    import json

    first = json.loads((data_dir / "math500_demo.jsonl").read_text().splitlines()[0])
    rows = rows_of(store, gsm8k)[:5]
    leak = copy.deepcopy(rows[0])
    leak["id"], leak["input"][0]["content"] = "leak", first["problem"]
    with store.writer("train", "prompts", step={"type": "test"}) as w:
        w.write(rows + [leak])
    m = run_decontam(store, w.manifest, [data_dir / "math500_demo.jsonl"], "clean",
                     DecontamConfig(ngram=8))
    hit = rows_of(store, m, rejected=True)[0]
    assert (hit["id"], hit["benchmark"], hit["matched_item"]) == \
        ("leak", "math500_demo.jsonl", first["unique_id"])


def test_decontam_checks_outputs_when_asked(store, data_dir):
    import json

    from .test_quality import sft_row

    item = json.loads((data_dir / "math500_demo.jsonl").read_text().splitlines()[3])
    rows = [sft_row(0, "off", "The answer is 4."), sft_row(1, "off", "Recall: " + item["problem"])]
    with store.writer("sft", "sft", step={"type": "test"}) as w:
        w.write(rows)
    bench = data_dir / "math500_demo.jsonl"
    assert run_decontam(store, w.manifest, [bench], "in-only").rejected.rows == 0
    m = run_decontam(store, w.manifest, [bench], "both", DecontamConfig(on=["input", "output"]))
    hit = rows_of(store, m, rejected=True)
    assert [(h["id"], h["matched_item"]) for h in hit] == [("s001", item["unique_id"])]


def test_dedup_edge_cases_single_row_and_empty_texts(store):
    rows = [{"id": i, "source": "s", "category": "math", "verifier": "none",
             "input": [{"role": "user", "content": text}]}
            for i, text in (("a", "only one real prompt here"), ("b", ""), ("c", "  ?! "))]
    with store.writer("tiny", "prompts", step={"type": "test"}) as w:
        w.write(rows[:1])
    assert run_dedup(store, w.manifest, "tiny-dedup").rows == 1
    with store.writer("empties", "prompts", step={"type": "test"}) as w:
        w.write(rows)
    m = run_dedup(store, w.manifest, "empties-dedup")
    # "" and "?!" normalise to the same (empty) text: an exact duplicate, never a near one
    assert m.rows == 2 and m.rejected.by_reason == {"exact_duplicate": 1}


def words_by_regex(text):
    import re
    return [w for w in re.split(r"[^\w]+|_", text.lower()) if w]


def test_normalize_gives_the_words_of_the_unicode_definition():
    from thinkforge.filters.text import normalize

    texts = ["Hello, World! It's 3.14...", "naïve CAFÉ — déjà-vu\tß Σίσυφος", "数学 问题：x+y=7？",
             "tabs\tand\nnewlines\r\n  ", "", None, "emoji 🙂 stays a separator", "A_B c-d"]
    got = normalize(pa.array(texts)).to_pylist()
    assert got[5] is None
    for text, norm in zip(texts, got, strict=True):
        if text is not None:
            assert [w for w in norm.split(" ") if w] == words_by_regex(text), text


@pytest.mark.parametrize("ngram", [1, 3, 13])
def test_decontam_flags_exactly_the_rows_sharing_an_ngram(store, ngram):
    """The word-pair prefilter never hides a hit: results equal a brute-force scan."""
    rng = np.random.default_rng(ngram)
    vocab = [f"w{i}" for i in range(30)] + ["Déjà", "vu", "x+y"]

    def text(lo, hi):
        return " ".join(rng.choice(vocab, size=int(rng.integers(lo, hi))))

    bench = [text(1, 40) for _ in range(40)]
    rows = [text(0, 60) for _ in range(300)]
    for r in rng.choice(300, size=30, replace=False):
        item = bench[int(rng.integers(40))].split()
        span = int(rng.integers(min(ngram, len(item)), len(item) + 1))
        rows[r] = rows[r] + ", " + " ".join(item[:span]).upper()

    def version(name, texts, prefix):
        with store.writer(name, "prompts", step={"type": "test"}) as w:
            w.write(pa.table({"id": [f"{prefix}{i:04d}" for i in range(len(texts))],
                              "source": ["t"] * len(texts), "category": ["math"] * len(texts),
                              "input": [[{"role": "user", "content": t}] for t in texts],
                              "verifier": ["none"] * len(texts)}))
        return w.manifest

    data, items = version("rows", rows, "r"), version("bench", bench, "b")
    out = run_decontam(store, data, [items], "clean", DecontamConfig(ngram=ngram))

    def grams(t):
        w = words_by_regex(t)
        return {tuple(w)} if 0 < len(w) < ngram else {tuple(w[i:i + ngram])
                                                      for i in range(len(w) - ngram + 1)}

    bench_grams = set().union(*(grams(t) for t in bench))
    expected = {f"r{i:04d}" for i, t in enumerate(rows) if grams(t) & bench_grams}
    rejected = {r["id"] for r in rows_of(store, out, rejected=True)}
    assert rejected == expected and len(expected) >= 20
    assert out.rows == len(rows) - len(expected)


def test_progress_shows_each_phase_on_stderr_and_changes_nothing(store, planted, capsys,
                                                                 monkeypatch):
    from thinkforge.filters import progress
    from thinkforge.filters.base import Resources

    monkeypatch.setattr(progress, "KEEP_PHASES_OF_SECONDS", 0.0)  # these phases are quick

    data, _ = planted
    quiet = run_dedup(store, data, "quiet", DedupConfig(threshold=0.7))
    assert capsys.readouterr().err == ""
    shown = run_dedup(store, data, "shown", DedupConfig(threshold=0.7),
                      resources=Resources(progress=True))
    out, err = capsys.readouterr()
    assert out == ""  # stdout is data
    for phase in ("exact duplicates", "MinHash signatures", "63 rows", "LSH candidate pairs",
                  "writing kept rows", "writing rejected rows", "publishing"):
        assert phase in err, phase  # 63: every document is signed (in the pass for the pre-key)
    assert shown.fingerprint == quiet.fingerprint
    monkeypatch.setattr(progress, "KEEP_PHASES_OF_SECONDS", 60.0)
    run_dedup(store, data, "brief", DedupConfig(threshold=0.7), resources=Resources(progress=True))
    assert "MinHash" not in capsys.readouterr().err  # quick phases leave no line behind


def test_decontam_bad_benchmark_file_says_where_and_publishes_nothing(store, gsm8k, tmp_path):
    from thinkforge.manifests.errors import InputDataError

    bad = tmp_path / "bench.jsonl"
    bad.write_text('{"question": "one two three", "id": "1"}\n{"question": "broken \n')
    with pytest.raises(InputDataError, match=r"bench.jsonl.*line 3"):
        run_decontam(store, gsm8k, [bad], "clean")
    assert "clean" not in store.names()
    assert not any((store.root / ".staging").iterdir())
