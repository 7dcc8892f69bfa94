"""Vectorised MinHash and LSH banding in numpy (no per-document Python loop).

Documents arrive as an Arrow ``list<uint64>`` of word hashes (computed by DuckDB).  A
shingle is ``k`` consecutive words combined by a polynomial rolling hash; a document with
fewer than ``k`` words is one shingle of all its words.  Each of ``num_perm`` hash
functions is a multiply-shift hash ``((a * x + b) mod 2^64) >> 32`` (a odd), a 2-universal
family, so the probability that two signatures agree at a position estimates the Jaccard
similarity of the shingle sets (Broder 1997).  LSH splits the signature into ``bands`` of
``rows``; two documents become candidates when any band is identical.  ``optimal_bands``
picks the split that minimises false positives + false negatives around the threshold,
the same criterion as datasketch's ``MinHashLSH``.
"""

from __future__ import annotations

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

    def signatures(self, words: pa.ListArray) -> np.ndarray:
        """``(len(words), num_perm)`` uint32 signatures; an empty document gets all 2^32-1.

        Laid out permutation-major while computing, so the per-document minimum is a
        ``reduceat`` along contiguous memory (4x faster than document-major).
        """
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


def band_keys(signatures: np.ndarray, bands: int, rows: int, seed: int = 7) -> np.ndarray:
    """``(n, bands)`` uint64 keys: equal keys <=> (almost surely) equal band slices."""
    rng = np.random.default_rng(seed)
    mult = rng.integers(1, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out = np.empty((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            part = signatures[:, band * rows:(band + 1) * rows].astype(np.uint64)
            out[:, band] = (part * mult).sum(axis=1, dtype=np.uint64) + np.uint64(band) * MIX
    return out


def _probability(s: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - s ** rows) ** bands


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows), bands x rows <= num_perm, minimising false-positive + false-negative areas."""
    grid = np.linspace(0.0, 1.0, 1001)
    below, above = grid[grid < threshold], grid[grid >= threshold]
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(_probability(below, bands, rows), below) if len(below) > 1 else 0.0
            fn = np.trapezoid(1 - _probability(above, bands, rows), above) if len(above) > 1 else 0.0
            if fp + fn < best_err:
                best, best_err = (bands, rows), fp + fn
    return best


def estimated_jaccard(signatures: np.ndarray, left: np.ndarray, right: np.ndarray,
                      chunk: int = 1 << 16) -> np.ndarray:
    """Share of equal signature positions for each pair (left[i], right[i])."""
    out = np.empty(len(left), dtype=np.float64)
    for lo in range(0, len(left), chunk):
        a = signatures[left[lo:lo + chunk]]
        b = signatures[right[lo:lo + chunk]]
        out[lo:lo + chunk] = (a == b).mean(axis=1)
    return out


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
