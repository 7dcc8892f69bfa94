"""The compiled decontam path (filters/ngram_kernels.py) against the DuckDB + numpy one.

Both must split texts into the same words (``text.normalize``'s: Unicode lower case, words
are runs of letters and digits) and flag the same rows with the same item, counts,
provenance and version fingerprint.
"""

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from thinkforge.filters import decontam
from thinkforge.filters.decontam import DecontamConfig, run_decontam
from thinkforge.manifests.selection import read_rejected, read_table

kernels = pytest.importorskip("thinkforge.filters.ngram_kernels")

# letters and digits of several scripts and widths, separators, marks, cased pairs
ALPHABET = list("aZ09 \t\n.,'-_/()éÉßçÇñ") + ["ｆ", "Ｆ", "１", "ＡＢ", "İ", "ı", "Σ", "ς", "ǅ",
                                            "e\u0301", "\u00a0", "\u3000", "—", "“", "”", "…",
                                            "数", "学", "٣", "🙂", "\x00", "Ⅻ", "²", "ﬁ", "ẞ"]
TEXTS = st.lists(st.one_of(st.none(), st.lists(st.sampled_from(ALPHABET), max_size=30)
                           .map("".join), st.text(max_size=40)), max_size=25)


def duckdb_words(texts: list) -> list:
    """The words the DuckDB path hashes (``words_expr``: tf_normalize + split)."""
    from thinkforge.filters.text import register, words_expr

    con = duckdb.connect()
    register(con)
    con.register("t", pa.table({"i": range(len(texts)), "text": pa.array(texts, pa.string())}))
    return [w or [] for (w,) in con.execute(f"SELECT {words_expr('text')} FROM t ORDER BY i")
            .fetchall()]


def kernel_words(texts: list) -> list:
    values, offsets = kernels.word_lists(*kernels.text_buffers(pa.array(texts, pa.string())),
                                         kernels.TABLE)
    return [values[lo:hi].tolist() for lo, hi in zip(offsets[:-1], offsets[1:], strict=True)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
@example(["0", "0", "0"])  # one-byte words: as many words as bytes over all texts
@example(["2", "0:1", None, "", "ﬁ Ａ1 İx"])
def test_kernel_splits_the_words_of_normalize(texts):
    expected = duckdb_words(texts)
    # each word the DuckDB path finds, hashed alone by the kernel: one hash per word
    words = sorted({w for ws in expected for w in ws})
    hashed = dict(zip(words, (h[0] for h in kernel_words(words)), strict=True)) if words else {}
    assert all(len(h) == 1 for h in kernel_words(words))
    assert kernel_words(texts) == [[hashed[w] for w in ws] for ws in expected]


def test_kernel_words_of_a_sliced_and_large_string_array():
    texts = pa.array(["x", "Héllo, WORLD", None, "", "a.b"])
    assert kernel_words(texts[1:].to_pylist()) == kernel_words(texts.to_pylist())[1:]
    sliced = kernels.word_lists(*kernels.text_buffers(texts[1:4]), kernels.TABLE)
    large = kernels.word_lists(*kernels.text_buffers(texts[1:4].cast(pa.large_string())),
                               kernels.TABLE)
    assert sliced[0].tolist() == large[0].tolist() and sliced[1].tolist() == large[1].tolist()
    assert sliced[1].tolist() == [0, 2, 2, 2]


def _version_rows(texts, prefix, first=0):
    return pa.table({"id": [f"{prefix}{i:04d}" for i in range(first, first + len(texts))],
                     "source": ["t"] * len(texts), "category": ["math"] * len(texts),
                     "input": [[{"role": "user", "content": t}] for t in texts],
                     "verifier": ["none"] * len(texts)})


def _version(store, name, texts, prefix):
    with store.writer(name, "prompts", step={"type": "test"}) as w:
        w.write(_version_rows(texts, prefix))
    return w.manifest


def _pool(seed: int, unicode: bool):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(25)] + (["Déjà", "VU", "ｆｕｌｌ", "数学", "naïve", "İs", "ǅx",
                                            "", "?!", "e\u0301t\u00e9"] if unicode else [])
    seps = [" ", ", ", " — ", "\t", "...", "\u3000"] if unicode else [" ", ", "]

    def text(lo, hi):
        n = int(rng.integers(lo, hi))
        return "".join(str(rng.choice(vocab)) + str(rng.choice(seps)) for _ in range(n))

    bench = [text(1, 30) for _ in range(30)] + ["", "?!"]
    rows = [text(0, 40) for _ in range(200)] + [""]
    for r in rng.choice(len(rows), size=25, replace=False):
        item = bench[int(rng.integers(30))]
        rows[r] = rows[r] + " " + (item.upper() if rng.random() < 0.5 else item)
    return rows, bench


@pytest.mark.parametrize(("seed", "unicode", "ngram", "min_matches"),
                         [(0, False, 13, 1), (1, True, 13, 1), (2, True, 3, 2), (3, True, 1, 1),
                          (4, False, 5, 1)])
def test_compiled_and_numpy_paths_publish_the_same_version(tmp_path, monkeypatch, seed, unicode,
                                                           ngram, min_matches):
    from thinkforge.manifests import DatasetStore

    rows, bench = _pool(seed, unicode)
    out = {}
    for engine in ("compiled", "numpy"):
        store = DatasetStore(tmp_path / engine)
        data, items = _version(store, "rows", rows, "r"), _version(store, "bench", bench, "b")
        if engine == "numpy":
            monkeypatch.setattr(decontam, "_kernels", lambda: None)
        m = run_decontam(store, data, [items], "clean",
                         DecontamConfig(ngram=ngram, min_matches=min_matches))
        out[engine] = (m.fingerprint, m.rows, m.rejected.rows, m.provenance,
                       read_table(store, m).to_pylist(), read_rejected(store, m).to_pylist())
    assert out["compiled"] == out["numpy"]
    assert out["compiled"][2] >= 3  # the planted rows are found


@pytest.mark.parametrize("budget", [1, 1 << 30])
def test_scan_on_every_thread_publishes_what_one_thread_does(tmp_path, monkeypatch, budget):
    """Row groups read ahead (one at a time with a 1-byte budget, or all), cut in pieces
    scanned on 1, 2 or 3 threads: the same hits, rows, provenance and fingerprint."""
    from thinkforge.filters.base import Resources
    from thinkforge.manifests import DatasetStore

    monkeypatch.setattr("thinkforge.manifests.writer.ROW_GROUP_ROWS", 16)
    monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 4000)
    monkeypatch.setattr(decontam, "READ_AHEAD_BYTES", budget)
    rows, bench = _pool(5, True)
    out = {}
    for threads in (1, 2, 3):
        store = DatasetStore(tmp_path / str(threads))
        with store.writer("rows", "prompts", step={"type": "test"}) as w:
            for lo in range(0, len(rows), 50):  # a new shard once one holds 4 kB
                w.write(_version_rows(rows[lo:lo + 50], "r", lo))
        data, items = w.manifest, _version(store, "bench", bench, "b")
        assert len(store.shard_paths(data)) > 1
        m = run_decontam(store, data, [items], "clean", DecontamConfig(ngram=3),
                         resources=Resources(threads=threads))
        out[threads] = (m.fingerprint, m.rows, m.rejected.rows, m.provenance,
                        read_rejected(store, m).to_pylist())
    assert out[1] == out[2] == out[3]
    assert out[1][2] >= 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS, st.integers(1, 4))
def test_text_hits_normalises_only_the_texts_that_are_not_ascii(texts, n):
    """Looking rows up as they are and again normalised when not ASCII (``text_hits``) finds
    what looking up every text normalised first finds."""
    from thinkforge.filters.decontam import _MASK
    from thinkforge.filters.minhash import MinHasher

    array = pa.array(texts, pa.string())
    values, offsets = kernels.word_lists(*kernels.text_buffers(array), kernels.TABLE)
    words = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
    grams = np.unique(MinHasher(num_perm=1, shingle=n).shingles(words)[0][::2])  # half of them
    bitmap = np.ones(int(_MASK) + 1, dtype=bool)
    bits = np.packbits(bitmap, bitorder="little")
    rows, found = kernels.text_hits(array, bits, _MASK, grams, n)
    rows2, found2, _ = kernels.row_hits(*kernels.text_buffers(array), kernels.TABLE, bits, _MASK,
                                        grams, n, False)
    assert sorted(zip(rows.tolist(), found.tolist(), strict=True)) == \
        sorted(zip(rows2.tolist(), found2.tolist(), strict=True))


MESSAGES = st.lists(st.one_of(st.none(), st.lists(st.one_of(
    st.none(), st.fixed_dictionaries({"role": st.just("user"), "content": st.one_of(
        st.none(), st.lists(st.sampled_from(ALPHABET), max_size=20).map("".join))})),
    max_size=4)), max_size=15)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES, st.integers(1, 4), st.integers(0, 3))
def test_messages_hits_equal_the_hits_of_the_joined_text(rows, n, cut):
    """A messages column read where its contents lie (``messages_hits``, the shards read by
    pyarrow) finds what the text DuckDB joins (``text.MESSAGES_TEXT``) finds, for NULL rows,
    messages and contents and a sliced column."""
    from thinkforge.filters.decontam import _MASK
    from thinkforge.filters.minhash import MinHasher
    from thinkforge.filters.text import MESSAGES_TEXT

    kind = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    column = pa.array(rows, kind)[min(cut, len(rows)):]
    con = duckdb.connect()
    con.register("t", pa.table({"i": range(len(column)), "input": column}))
    joined = pa.array([t for (t,) in con.execute(
        f"SELECT {MESSAGES_TEXT.format(col='input')} FROM t ORDER BY i").fetchall()], pa.string())
    values, offsets = kernels.word_lists(*kernels.text_buffers(joined), kernels.TABLE)
    words = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
    grams = np.unique(MinHasher(num_perm=1, shingle=n).shingles(words)[0][::2])
    bits = np.packbits(np.ones(int(_MASK) + 1, dtype=bool), bitorder="little")
    expected = kernels.text_hits(joined, bits, _MASK, grams, n)
    found = kernels.messages_hits(column, bits, _MASK, grams, n)
    assert sorted(zip(*(a.tolist() for a in found), strict=True)) == \
        sorted(zip(*(a.tolist() for a in expected), strict=True))
