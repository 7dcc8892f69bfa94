"""Compiled (numba) MinHash signatures: the same values as ``minhash.MinHasher.signatures``.

Imported lazily by ``minhash.py`` (numba is the ``fast`` extra; without it numpy runs).
numpy computes a (permutations x shingles) block of 64-bit products per step and then
its per-document minima, each a pass over memory; here each shingle's hash is made once
and folded into the document's running minima in registers/L1, with no temporaries.
"""

from __future__ import annotations

import numba
import numpy as np

MIX = np.uint64(0x9E3779B97F4A7C15)  # = minhash.MIX
_SHIFT = np.uint64(32)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def signatures(values, offsets, k, a, b):
    """(documents, permutations) uint32: the minimum over each document's shingles of
    ``(a * shingle + b) >> 32``; a shingle = the rolling hash of ``k`` consecutive word
    hashes (a document of fewer than ``k`` words: one shingle of all of them; no words:
    every position 2^32 - 1)."""
    n = len(offsets) - 1
    perms = len(a)
    out = np.full((n, perms), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    best = np.empty(perms, dtype=np.uint64)
    for d in range(n):
        lo, hi = offsets[d], offsets[d + 1]
        length = hi - lo
        if length == 0:
            continue
        width = min(k, length)
        for p in range(perms):
            best[p] = np.uint64(0xFFFFFFFF)
        for s in range(lo, hi - width + 1):
            x = values[s]
            for j in range(1, width):
                x = x * MIX + values[s + j]
            for p in range(perms):
                h = (a[p] * x + b[p]) >> _SHIFT
                if h < best[p]:
                    best[p] = h
        for p in range(perms):
            out[d, p] = np.uint32(best[p])
    return out
