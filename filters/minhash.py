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

_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant: spreads bits when combining
_CHUNK = 1 << 15  # shingles per block: (chunk x num_perm) uint64 stays ~32 MiB at 128 perms


class MinHasher:
    def __init__(self, num_perm: int = 128, shingle: int = 5, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm, self.shingle = num_perm, shingle
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def shingles(self, words: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes and, for each, the index of its document within ``words``."""
        offsets = words.offsets.to_numpy().astype(np.int64)
        values = words.flatten().to_numpy(zero_copy_only=False).astype(np.uint64)
        lengths = np.diff(offsets)
        doc = np.repeat(np.arange(len(lengths)), lengths)
        pos = np.arange(len(values)) - offsets[:-1][doc]
        k = self.shingle
        combined = np.zeros(len(values), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(k):
                idx = np.arange(len(values)) + j
                ok = (pos + j) < lengths[doc]  # stays inside the document
                combined[ok] = combined[ok] * _MIX + values[idx[ok]]
        starts = ((pos + k) <= lengths[doc]) | ((lengths[doc] < k) & (pos == 0))
        return combined[starts], doc[starts]

    def signatures(self, words: pa.ListArray) -> np.ndarray:
        """``(len(words), num_perm)`` uint32 signatures; an empty document gets all 2^32-1."""
        shingles, doc = self.shingles(words)
        out = np.full((len(words), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        if len(shingles) == 0:
            return out
        with np.errstate(over="ignore"):
            for lo in range(0, len(shingles), _CHUNK):
                block = shingles[lo:lo + _CHUNK, None]
                hashed = ((block * self.a + self.b) >> np.uint64(32)).astype(np.uint32)
                block_doc = doc[lo:lo + _CHUNK]
                # documents are contiguous: reduce each run of rows to its minimum
                starts = np.flatnonzero(np.r_[True, block_doc[1:] != block_doc[:-1]])
                mins = np.minimum.reduceat(hashed, starts, axis=0)
                ids = block_doc[starts]
                out[ids] = np.minimum(out[ids], mins)
        return out


def band_keys(signatures: np.ndarray, bands: int, rows: int, seed: int = 7) -> np.ndarray:
    """``(n, bands)`` uint64 keys: equal keys <=> (almost surely) equal band slices."""
    rng = np.random.default_rng(seed)
    mult = rng.integers(1, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out = np.empty((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            part = signatures[:, band * rows:(band + 1) * rows].astype(np.uint64)
            out[:, band] = (part * mult).sum(axis=1, dtype=np.uint64) + np.uint64(band) * _MIX
    return out


def _probability(s: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - s ** rows) ** bands


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the false-positive + false-negative areas (equal weights)."""
    grid = np.linspace(0.0, 1.0, 1001)
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        below, above = grid[grid < threshold], grid[grid >= threshold]
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
