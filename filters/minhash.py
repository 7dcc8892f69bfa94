"""Vectorised MinHash and LSH banding in numpy (no per-document Python loop).

Documents arrive as an Arrow ``list<uint64>`` of word hashes (computed by DuckDB).  A
shingle is ``k`` consecutive words combined by a polynomial rolling hash; a document with
fewer than ``k`` words is one shingle of all its words.  Each of ``num_perm`` hash
functions is a multiply-shift hash ``((a * x + b) mod 2^64) >> 32`` (a odd), a 2-universal
family, so the probability that two signatures agree at a position estimates the Jaccard
similarity of the shingle sets (Broder 1997).  LSH splits the signature into ``bands`` of
``rows``; two documents become candidates when any band is identical.  ``optimal_bands``
picks the split that minimises weighted false positives + false negatives around the
threshold, the same criterion as datasketch's ``MinHashLSH``; ``ShingleSets`` verifies the
candidates by the exact Jaccard of their shingle sets.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa

MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant: spreads bits when combining
_CHUNK = 1 << 14  # shingles per block: (num_perm x chunk) uint64 stays 16 MiB at 128 perms


def flat_lists(words: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 values, int64 offsets from 0) of a list<uint64> array, slices included."""
    offsets = words.offsets.to_numpy().astype(np.int64)
    values = words.values.to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    return values[offsets[0]:offsets[-1]], offsets - offsets[0]


def window_hashes(values: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """The shingle hash (as ``MinHasher.shingles`` computes it) of the ``k`` words from each
    of ``starts``: for a few windows, where rolling over every position would be waste."""
    out = values[starts].copy()
    with np.errstate(over="ignore"):
        for j in range(1, k):
            out *= MIX
            out += values[starts + j]
    return out


class MinHasher:
    def __init__(self, num_perm: int = 128, shingle: int = 5, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm, self.shingle = num_perm, shingle
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def shingles(self, words: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes and, for each, the index of its document within ``words``.

        The rolling hash runs over the flat word array with contiguous slices (no masks);
        windows that cross a document boundary are computed and then dropped.  A document
        shorter than ``k`` takes the hash of all its words, read off the window at its start
        after as many steps as it has words.
        """
        values, offsets = flat_lists(words)
        lengths = np.diff(offsets)
        starts = offsets[:-1]
        k = self.shingle
        combined = values.copy()
        short = [np.flatnonzero(lengths == 1)]
        with np.errstate(over="ignore"):
            for j in range(1, min(k, len(values))):  # no document is longer than that
                head = combined[:len(values) - j]
                head *= MIX
                head += values[j:]
                short.append(np.flatnonzero(lengths == j + 1))
        short_docs = np.concatenate(short)
        short_docs = short_docs[lengths[short_docs] < k]
        # a full window of k words starts at every position up to length - k of each document
        full = lengths >= k
        n_windows = np.where(full, lengths - k + 1, 0)
        window_doc = np.repeat(np.arange(len(lengths)), n_windows)
        window_pos = np.arange(int(n_windows.sum())) - np.repeat(np.cumsum(n_windows) - n_windows,
                                                                 n_windows)
        window_start = starts[window_doc] + window_pos
        if len(short_docs) == 0:
            return combined[window_start], window_doc
        grams = np.concatenate([combined[window_start], self._short(values, starts, lengths,
                                                                    short_docs)])
        docs = np.concatenate([window_doc, short_docs])
        order = np.argsort(docs, kind="stable")  # callers rely on documents being contiguous
        return grams[order], docs[order]

    @staticmethod
    def _short(values, starts, lengths, docs) -> np.ndarray:
        """The rolling hash of all the words of each (short) document in ``docs``."""
        out = np.zeros(len(docs), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(int(lengths[docs].max()) if len(docs) else 0):
                live = lengths[docs] > j
                out[live] = out[live] * MIX + values[starts[docs[live]] + j]
        return out

    def signatures(self, words: pa.ListArray, compiled: bool = True) -> np.ndarray:
        """``(len(words), num_perm)`` uint32 signatures; an empty document gets all 2^32-1.

        With numba (the ``fast`` extra; ``compiled``) one compiled pass
        (``minhash_kernels``); else numpy, laid out permutation-major while computing, so
        the per-document minimum is a ``reduceat`` along contiguous memory (4x faster than
        document-major).  Both give the same values.
        """
        kernels = _kernels() if compiled else None
        if kernels is not None:
            values, offsets = flat_lists(words)
            return kernels.signatures(values, offsets, self.shingle, self.a, self.b)
        shingles, doc = self.shingles(words)
        out = np.full((self.num_perm, len(words)), np.iinfo(np.uint32).max, dtype=np.uint32)
        a, b = self.a[:, None], self.b[:, None]
        with np.errstate(over="ignore"):
            for lo in range(0, len(shingles), _CHUNK):
                hashed = (shingles[None, lo:lo + _CHUNK] * a + b) >> np.uint64(32)
                block_doc = doc[lo:lo + _CHUNK]
                # documents are contiguous: reduce each run of columns to its minimum
                starts = np.flatnonzero(np.r_[True, block_doc[1:] != block_doc[:-1]])
                mins = np.minimum.reduceat(hashed, starts, axis=1).astype(np.uint32)
                ids = block_doc[starts]
                out[:, ids] = np.minimum(out[:, ids], mins)
        return np.ascontiguousarray(out.T)


def _kernels():
    """``minhash_kernels`` or None without numba (or nowhere for it to cache)."""
    try:
        from . import minhash_kernels
    except (ImportError, RuntimeError):
        return None
    return minhash_kernels


def warm_up() -> threading.Thread:
    """Import numba and load the compiled signatures in a thread (~1.5 s, mostly numba's
    own start-up), so it overlaps the DuckDB work before the first signature is wanted."""
    def load() -> None:
        kernels = _kernels()
        if kernels is not None:
            one = np.ones(1, dtype=np.uint64)
            kernels.signatures(one, np.array([0, 1], dtype=np.int64), 1, one, one)

    thread = threading.Thread(target=load, name="minhash-warm-up", daemon=True)
    thread.start()
    return thread


def band_keys(signatures: np.ndarray, bands: int, rows: int, seed: int = 7,
              compiled: bool = True) -> np.ndarray:
    """``(n, bands)`` uint64 keys: equal keys <=> (almost surely) equal band slices.  With
    numba (``compiled``) one compiled pass (``minhash_kernels.band_keys``, ~10x faster:
    numpy copies every band's slice to uint64 first); the same values."""
    rng = np.random.default_rng(seed)
    mult = rng.integers(1, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    kernels = _kernels() if compiled else None
    if kernels is not None and len(signatures):
        return kernels.band_keys(np.ascontiguousarray(signatures), mult, bands, rows)
    out = np.empty((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            part = signatures[:, band * rows:(band + 1) * rows].astype(np.uint64)
            out[:, band] = (part * mult).sum(axis=1, dtype=np.uint64) + np.uint64(band) * MIX
    return out


def maybe_shared(keys: np.ndarray) -> np.ndarray:
    """bool per uint64 key: True for every key that occurs more than once (and, with numba,
    ~3-6% of the others): a filter before an exact GROUP BY of LSH buckets, where most band
    keys are their bucket's only one.  numba: one pass into bit tables of 8-16x as many
    slots as keys (``minhash_kernels.repeated_slots``, ~0.03 s per 4M keys, where DuckDB
    groups 4M band rows in 0.6-0.8 s on one thread); numpy: exact, by sorting."""
    kernels = _kernels()
    if kernels is not None and len(keys):
        bits = max(16, int(len(keys)).bit_length() + 3)
        return kernels.repeated_slots(np.ascontiguousarray(keys, dtype=np.uint64), bits)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] > 1


def _probability(s: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - s ** rows) ** bands


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int,
                  false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows), bands x rows <= num_perm, minimising the weighted areas
    ``(1 - w) * FP + w * FN`` (``w`` = ``false_negative_weight``): FP the candidate
    probability integrated below the threshold, FN the miss probability above it.

    datasketch's ``MinHashLSH._optimal_param`` criterion (its ``weights`` = (1 - w, w)),
    integrated on a 1001-point grid instead of by quadrature.  ``w`` > 0.5 buys recall with
    candidates: worth it when candidates are verified exactly (``exact_jaccard``).  Every
    (bands, rows) at once, one row each (a loop over the ~600 of them took 0.16 s of every
    step); the first of equal errors in (bands, rows) order wins, as the loop did."""
    grid = np.linspace(0.0, 1.0, 1001)
    below, above = grid[grid < threshold], grid[grid >= threshold]
    shapes = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    bands, rows = shapes[:, :1], shapes[:, 1:]
    fp = np.trapezoid(_probability(below, bands, rows), below, axis=1) if len(below) > 1 \
        else np.zeros(len(shapes))
    fn = np.trapezoid(1 - _probability(above, bands, rows), above, axis=1) if len(above) > 1 \
        else np.zeros(len(shapes))
    err = (1 - false_negative_weight) * fp + false_negative_weight * fn
    best = int(np.argmin(err))
    return int(shapes[best, 0]), int(shapes[best, 1])


class ShingleSets:
    """The distinct shingle hashes of some documents, for exact Jaccard of document pairs.

    Built from ``MinHasher.shingles`` output (``doc`` = the document's number, any order):
    each (document, shingle) becomes one sorted ``int64`` key ``doc * S + shingle rank``
    (``S`` distinct shingles, ranked by ``np.unique``), so a set intersection is a
    ``searchsorted`` over one array, for all pairs at once."""

    def __init__(self, shingles: np.ndarray, doc: np.ndarray, n_docs: int):
        ranks, rank_of = np.unique(shingles, return_inverse=True)
        self.width = max(len(ranks), 1)
        self.keys = np.unique(doc.astype(np.int64) * self.width + rank_of.reshape(-1))
        key_doc = self.keys // self.width
        self.sizes = np.bincount(key_doc, minlength=n_docs)
        self.starts = np.r_[0, np.cumsum(self.sizes)[:-1]]

    def jaccard(self, left: np.ndarray, right: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
        """|A & B| / |A | B| of the shingle sets of documents left[i] and right[i] (two
        empty sets: 1).  Bounded memory: ~``chunk`` shingles of the left sides at a time."""
        out = np.empty(len(left), dtype=np.float64)
        if not len(left):
            return out
        cost = np.cumsum(self.sizes[left])  # split the pairs where ~chunk shingles add up
        bounds = np.unique(np.r_[0, np.searchsorted(cost, np.arange(chunk, cost[-1], chunk)),
                                 len(left)])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            out[lo:hi] = self._jaccard(left[lo:hi], right[lo:hi])
        return out

    def _jaccard(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        sizes = self.sizes[left]
        pair = np.repeat(np.arange(len(left)), sizes)
        # each shingle of the left document, keyed as if it belonged to the right one
        pos = np.arange(len(pair)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        rank = self.keys[self.starts[left][pair] + pos] % self.width
        want = right[pair].astype(np.int64) * self.width + rank
        at = np.searchsorted(self.keys, want).clip(max=max(len(self.keys) - 1, 0))
        both = np.bincount(pair, weights=self.keys[at] == want, minlength=len(left)) \
            if len(self.keys) else np.zeros(len(left))
        return jaccard_ratio(both, sizes, self.sizes[right])



class SortedShingleSets:
    """Exact Jaccard of document pairs in bounded memory (the compiled path, numba).

    Each document's distinct shingle hashes, sorted (``minhash_kernels.shingle_sets``: 8
    bytes a shingle and no rank index), appended as documents arrive to block files of
    ~``block_bytes`` in ``directory``; ``jaccard`` merges the two sides of each pair
    (``minhash_kernels.intersections``) holding two blocks at a time.  ``ShingleSets``
    ranks every shingle of every document at once: at 33M SFT rows (3.25M candidate pairs
    of ~5M prompts) that peaked at 8 GiB.  Same values as ``ShingleSets``."""

    def __init__(self, n_docs: int, shingle: int, directory: Path, block_bytes: int = 256 << 20):
        self.kernels = _kernels()
        if self.kernels is None:
            raise RuntimeError("SortedShingleSets needs numba (the fast extra): use ShingleSets")
        self.shingle, self.dir, self.block_bytes = shingle, Path(directory), block_bytes
        self.block = np.full(n_docs, -1, dtype=np.int32)  # -1: not added
        self.start = np.zeros(n_docs, dtype=np.int64)    # in its block, in shingles
        self.size = np.zeros(n_docs, dtype=np.int64)
        self.blocks, self._file, self._written = 0, None, 0

    @staticmethod
    def compiled() -> bool:
        return _kernels() is not None

    def add(self, docs: np.ndarray, words: pa.ListArray) -> None:
        """The sets of ``words`` (lists of word hashes), document ``docs[i]`` = ``words[i]``."""
        values, offsets = flat_lists(words)
        flat, counts = self.kernels.shingle_sets(values, offsets, self.shingle)
        if self._file is None or (self._written and self._written + flat.nbytes > self.block_bytes):
            self._close()
            self._file = (self.dir / f"shingles-{self.blocks}.bin").open("wb")
            self.blocks += 1
        self.block[docs] = self.blocks - 1
        self.start[docs] = self._written // 8 + np.cumsum(counts) - counts
        self.size[docs] = counts
        flat.tofile(self._file)
        self._written += flat.nbytes

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._written = None, 0

    def _load(self, block: int) -> np.ndarray:
        return np.fromfile(self.dir / f"shingles-{block}.bin", dtype=np.uint64)

    def jaccard(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """|A & B| / |A | B| of documents left[i] and right[i] (two empty sets: 1)."""
        self._close()
        out = np.ones(len(left), dtype=np.float64)
        if not len(left):
            return out
        if (self.block[left] < 0).any() or (self.block[right] < 0).any():
            raise ValueError("a document in a pair was never added")
        # the side in the earlier block first (Jaccard is symmetric), pairs grouped by blocks
        flip = self.block[left] > self.block[right]
        a, b = np.where(flip, right, left), np.where(flip, left, right)
        group = self.block[a].astype(np.int64) * self.blocks + self.block[b]
        order = np.argsort(group, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(self.blocks * self.blocks + 1))
        for i in range(self.blocks):
            x = None
            for j in range(i, self.blocks):
                lo, hi = bounds[i * self.blocks + j], bounds[i * self.blocks + j + 1]
                if lo == hi:
                    continue
                x = self._load(i) if x is None else x
                y = x if j == i else self._load(j)
                sel = order[lo:hi]
                da, db = a[sel], b[sel]
                both = self.kernels.intersections(x, self.start[da], self.size[da],
                                                  y, self.start[db], self.size[db])
                out[sel] = jaccard_ratio(both, self.size[da], self.size[db])
        return out


def sorted_sets(hasher: MinHasher, words: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """(flat uint64, counts int64): each document's distinct shingle hashes, sorted, one
    document after another (``minhash_kernels.shingle_sets``; numpy without numba: the same
    arrays), for ``set_intersections``."""
    kernels = _kernels()
    values, offsets = flat_lists(words)
    if kernels is not None:
        return kernels.shingle_sets(values, offsets, hasher.shingle)
    grams, doc = hasher.shingles(words)
    order = np.lexsort((grams, doc))
    grams, doc = grams[order], doc[order]
    first = np.r_[True, (grams[1:] != grams[:-1]) | (doc[1:] != doc[:-1])] if len(doc) else \
        np.zeros(0, dtype=bool)
    return grams[first], np.bincount(doc[first], minlength=len(words)).astype(np.int64)


def set_intersections(xa: np.ndarray, start_a: np.ndarray, size_a: np.ndarray, xb: np.ndarray,
                      start_b: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """|A & B| of each pair of ``sorted_sets`` sets: A = ``xa[start_a[i]:][:size_a[i]]``, B
    likewise in ``xb`` (``minhash_kernels.intersections``; numpy without numba)."""
    kernels = _kernels()
    if kernels is not None:
        return kernels.intersections(xa, start_a, size_a, xb, start_b, size_b)
    out = np.zeros(len(start_a), dtype=np.int64)
    for i in range(len(start_a)):
        a = xa[start_a[i]:start_a[i] + size_a[i]]
        b = xb[start_b[i]:start_b[i] + size_b[i]]
        out[i] = len(np.intersect1d(a, b, assume_unique=True))
    return out


def jaccard_ratio(both: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """|A & B| / |A | B| from the intersections and the two set sizes (two empty sets: 1)."""
    union = size_a + size_b - both
    return np.divide(both, union, out=np.ones(len(both)), where=union > 0)


def connected_components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Label of each node 0..n-1 = the smallest node of its component (edges left-right)."""
    label = np.arange(n, dtype=np.int64)
    if len(left) == 0:
        return label
    while True:
        lowest = np.minimum(label[left], label[right])
        before = label.copy()
        np.minimum.at(label, left, lowest)
        np.minimum.at(label, right, lowest)
        label = label[label]  # pointer jumping: follow labels to their own labels
        if np.array_equal(label, before):
            return label
