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


@numba.njit(inline="always")
def _shingle(values, s, width):
    """The rolling hash of ``width`` consecutive word hashes from ``values[s]`` (one shingle;
    the same value as ``minhash.MinHasher.shingles``)."""
    x = values[s]
    for j in range(1, width):
        x = x * MIX + values[s + j]
    return x


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
            x = _shingle(values, s, width)
            for p in range(perms):
                h = (a[p] * x + b[p]) >> _SHIFT
                if h < best[p]:
                    best[p] = h
        for p in range(perms):
            out[d, p] = np.uint32(best[p])
    return out


@numba.njit(cache=True, nogil=True, boundscheck=False)
def shingle_sets(values, offsets, k):
    """(flat uint64, counts int64): each document's distinct shingle hashes (the shingles of
    ``signatures`` and ``MinHasher.shingles``), sorted, one document after another; an
    empty document has none.  8 bytes a shingle and nothing else: what the exact Jaccard
    of candidate pairs holds (``minhash.SortedShingleSets``)."""
    n = len(offsets) - 1
    total = 0
    for d in range(n):
        length = offsets[d + 1] - offsets[d]
        if length > 0:
            total += length - min(k, length) + 1
    out = np.empty(total, dtype=np.uint64)
    counts = np.zeros(n, dtype=np.int64)
    pos = 0
    for d in range(n):
        lo, hi = offsets[d], offsets[d + 1]
        length = hi - lo
        if length == 0:
            continue
        width = min(k, length)
        start = pos
        for s in range(lo, hi - width + 1):
            out[pos] = _shingle(values, s, width)
            pos += 1
        out[start:pos].sort()
        kept = start + 1  # drop repeats in place: the set of the document's shingles
        for i in range(start + 1, pos):
            if out[i] != out[kept - 1]:
                out[kept] = out[i]
                kept += 1
        counts[d] = kept - start
        pos = kept
    return out[:pos], counts


@numba.njit(cache=True, nogil=True, boundscheck=False)
def intersections(xa, start_a, size_a, xb, start_b, size_b):
    """|A & B| of each pair: A = xa[start_a[i]:start_a[i] + size_a[i]], B likewise in xb,
    both sorted and distinct (a merge, no temporaries)."""
    out = np.empty(len(start_a), dtype=np.int64)
    for i in range(len(start_a)):
        p, p_end = start_a[i], start_a[i] + size_a[i]
        q, q_end = start_b[i], start_b[i] + size_b[i]
        both = 0
        while p < p_end and q < q_end:
            u, v = xa[p], xb[q]
            if u == v:
                both += 1
                p += 1
                q += 1
            elif u < v:
                p += 1
            else:
                q += 1
        out[i] = both
    return out


@numba.njit(cache=True, nogil=True, boundscheck=False)
def band_keys(signatures, mult, bands, rows):
    """(documents, bands) uint64: ``minhash.band_keys``'s values (each band's slice of the
    signature times ``mult``, summed mod 2^64, plus band x MIX) in one pass, without the
    numpy version's uint64 copy of every slice."""
    n = signatures.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for d in range(n):
        for band in range(bands):
            acc = np.uint64(band) * MIX
            base = band * rows
            for r in range(rows):
                acc += np.uint64(signatures[d, base + r]) * mult[r]
            out[d, band] = acc
    return out


_SPREAD = np.uint64(0xFF51AFD7ED558CCD)  # an odd multiplier: the slot is the product's top bits


@numba.njit(cache=True, nogil=True, boundscheck=False)
def repeated_slots(keys, bits):
    """bool per key: True where another key fell in its slot of a 2^``bits`` bit table (the
    top ``bits`` of key x an odd multiplier): every key that repeats, and a few that only
    share a slot.  Two bit tables (seen once / seen again) and two passes, no sort."""
    shift = np.uint64(64 - bits)
    once = np.zeros(1 << (bits - 6), dtype=np.uint64)
    again = np.zeros(1 << (bits - 6), dtype=np.uint64)
    low = np.uint64(63)
    for i in range(len(keys)):
        s = (keys[i] * _SPREAD) >> shift
        word, bit = s >> np.uint64(6), np.uint64(1) << (s & low)
        if once[word] & bit:
            again[word] |= bit
        else:
            once[word] |= bit
    out = np.empty(len(keys), dtype=np.bool_)
    for i in range(len(keys)):
        s = (keys[i] * _SPREAD) >> shift
        out[i] = (again[s >> np.uint64(6)] >> (s & low)) & np.uint64(1) != 0
    return out
