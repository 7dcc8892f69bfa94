"""Compiled (numba) word hashing and n-gram lookup over Arrow string buffers.

Imported lazily by ``filters/decontam.py`` (numba is the ``fast`` extra; without it the
DuckDB + numpy path runs).  One pass over each text's UTF-8 bytes splits it into words,
hashes each word and checks its n-gram windows against a benchmark's n-grams, with no
Python object per row or word and without the GIL.

Words: the bytes are read through ``TABLE``: an ASCII letter or digit is a word byte (lower
cased), any other ASCII byte separates words, a byte >= 0x80 is a word byte.  For an ASCII
text these are exactly ``text.normalize``'s words; a text that is not ASCII must be given
already normalised (``text.normalize``: Unicode lower case, every character that is not a
letter or digit a space), and reading that through the table changes nothing, so both
paths split on the same words.

Word hash: FNV-1a over the word's bytes, finished by the splitmix64 mixer (64 bits; both
sides of a comparison use it, so the hash function is internal).  An n-gram's hash is the
polynomial rolling hash of ``minhash.window_hashes`` (``h = h * MIX + word``); a text of
fewer than n words is one n-gram of all its words.
"""

from __future__ import annotations

import numba
import numpy as np

MIX = np.uint64(0x9E3779B97F4A7C15)  # = minhash.MIX
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# 0: separator; otherwise the byte of the word (ASCII lower case; bytes >= 0x80 as they are)
TABLE = np.array([ord(chr(b).lower()) if b < 128 and chr(b).isalnum() else (b if b >= 128 else 0)
                   for b in range(256)], dtype=np.uint8)

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)


@_jit
def _finish(h):
    """A word's FNV hash through the splitmix64 finaliser (mixes every bit)."""
    h ^= h >> np.uint64(30)
    h *= _M1
    h ^= h >> np.uint64(27)
    h *= _M2
    h ^= h >> np.uint64(31)
    return h


@_jit
def _words(data, lo, hi, table, out, at):
    """Hashes of the words of ``data[lo:hi]`` into ``out[at:]``; returns where they end,
    and whether a byte was not ASCII."""
    nw = at
    h = _FNV_OFFSET
    inside = False
    high = np.uint8(0)
    for i in range(lo, hi):
        high |= data[i]
        c = table[data[i]]
        if c != 0:
            h = (h ^ np.uint64(c)) * _FNV_PRIME
            inside = True
        elif inside:
            out[nw] = _finish(h)
            nw += 1
            h = _FNV_OFFSET
            inside = False
    if inside:
        out[nw] = _finish(h)
        nw += 1
    return nw, high >= 0x80


@_jit
def word_lists(offsets, data, table):
    """(values, offsets) of every text's word hashes: a list<uint64> column's buffers."""
    n = len(offsets) - 1
    # a text of L bytes has at most (L + 1) // 2 words (+ the slot _words writes past them)
    values = np.empty((offsets[n] - offsets[0] + n) // 2 + 2, dtype=np.uint64)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    at = 0
    for i in range(n):
        at, _ = _words(data, offsets[i], offsets[i + 1], table, values, at)
        out_offsets[i + 1] = at
    return values[:at].copy(), out_offsets


@_jit
def _found(grams, g):
    lo, hi = 0, len(grams)
    while lo < hi:
        mid = (lo + hi) >> 1
        if grams[mid] < g:
            lo = mid + 1
        else:
            hi = mid
    return lo < len(grams) and grams[lo] == g


@_jit
def _bit(bits, h, mask):
    slot = h & mask
    return (bits[slot >> np.uint64(3)] >> (slot & np.uint64(7))) & np.uint8(1)


@_jit
def row_hits(offsets, data, table, bits, mask, grams, n, ascii_only):
    """``message_hits`` of texts (one message per row)."""
    starts = np.arange(len(offsets) - 1)
    return message_hits(starts, starts + 1, offsets, data, table, bits, mask, grams, n,
                        ascii_only)


@_jit
def message_hits(starts, ends, offsets, data, table, bits, mask, grams, n, ascii_only):
    """(row, n-gram hash) of every n-gram of each row that is in ``grams`` (sorted), and
    (``ascii_only``) the rows skipped because they are not ASCII (``text_hits``: they are
    normalised and looked up again).

    Row i is the texts (messages) ``starts[i] .. ends[i] - 1`` of ``offsets`` / ``data``
    read as one text, a message boundary separating words (as the newline that joins them
    in ``text.MESSAGES_TEXT`` does): a list<string> column read without joining its strings.

    ``bits``: the benchmark's word pairs (``a * MIX + b``; n = 1: its words) as a bitmap
    (``np.packbits(..., bitorder="little")`` of ``mask + 1`` booleans).  A window can only be
    a benchmark n-gram when each of its n - 1 pairs has its bit set: the pairs of a window
    are checked from its end, and a pair that is not set rules out every window containing
    it (the next window to try starts after it), so random text costs about one lookup per
    n - 1 words.  A text of fewer than n words is looked up as one n-gram.
    """
    rows = len(starts)
    longest = 0
    for i in range(rows):  # a message of L bytes has at most (L + 1) // 2 words
        if ends[i] > starts[i]:
            longest = max(longest, offsets[ends[i]] - offsets[starts[i]] + ends[i] - starts[i])
    words = np.empty(longest // 2 + 1, dtype=np.uint64)
    out_rows = np.empty(64, dtype=np.int64)
    out_grams = np.empty(64, dtype=np.uint64)
    found = 0
    other = np.empty(rows, dtype=np.int64)
    n_other = 0
    for i in range(rows):
        nw = 0
        high = False
        for m in range(starts[i], ends[i]):
            nw, more = _words(data, offsets[m], offsets[m + 1], table, words, nw)
            high |= more
        if high and ascii_only:
            other[n_other] = i
            n_other += 1
            continue
        if nw == 0:
            continue
        if nw < n:  # too short for a window: one n-gram of all its words
            g = words[0]
            for j in range(1, nw):
                g = g * MIX + words[j]
            if _found(grams, g):
                out_rows, out_grams = _put(out_rows, out_grams, found, i, g)
                found += 1
            continue
        start = 0
        while start + n <= nw:
            ok = True
            for q in range(start + n - 2, start - 1, -1):  # pairs q = (q, q + 1)
                h = words[q] * MIX + words[q + 1] if n > 1 else words[q]
                if _bit(bits, h, mask) == 0:
                    start = q + 1
                    ok = False
                    break
            if not ok:
                continue
            g = words[start]
            for j in range(1, n):
                g = g * MIX + words[start + j]
            if _found(grams, g):
                out_rows, out_grams = _put(out_rows, out_grams, found, i, g)
                found += 1
            start += 1
    return out_rows[:found].copy(), out_grams[:found].copy(), other[:n_other].copy()


@_jit
def _put(out_rows, out_grams, at, row, gram):
    if at == len(out_rows):
        out_rows, out_grams = _grown(out_rows), _grown(out_grams)
    out_rows[at] = row
    out_grams[at] = gram
    return out_rows, out_grams


@_jit
def _grown(a):
    out = np.empty(len(a) * 2, dtype=a.dtype)
    out[:len(a)] = a
    return out


def text_buffers(texts) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets, uint8 bytes) of ``texts`` (Arrow strings) for the kernels: NULL is an
    empty text, a text that is not ASCII is replaced by its ``normalize_unicode``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .text import normalize_unicode

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    other = pc.invert(pc.string_is_ascii(texts))
    if pc.any(other).as_py():
        texts = pc.replace_with_mask(texts, other, normalize_unicode(texts.filter(other)))
    return _buffers(texts)


def text_hits(texts, bits, mask, grams, n) -> tuple[np.ndarray, np.ndarray]:
    """``row_hits`` of Arrow strings (NULL: no words): an ASCII text is read as it is, a text
    that is not is normalised first (``text.normalize_unicode``, what ``text_buffers`` does)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .text import normalize_unicode

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    offsets, data = _buffers(texts)
    rows, found, other = row_hits(offsets, data, TABLE, bits, mask, grams, n, True)
    if len(other):
        again = normalize_unicode(texts.take(pa.array(other)))
        more, more_found, _ = row_hits(*_buffers(again), TABLE, bits, mask, grams, n, False)
        rows, found = np.r_[rows, other[more]], np.r_[found, more_found]
    return rows, found


def _buffers(texts) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa

    if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.string())
    _, offsets, data = texts.buffers()
    width = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(offsets, dtype=width)[texts.offset:texts.offset + len(texts) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets.astype(np.int64), data


def messages_hits(column, bits, mask, grams, n) -> tuple[np.ndarray, np.ndarray]:
    """``text_hits`` of a list column of messages (``list<struct<..., content>>`` as a
    prompts ``input`` column is read from Parquet, or ``list<string>``): each row's contents
    are one text, as ``text.MESSAGES_TEXT`` joins them with newlines, but read where they
    lie (no joined copy); a NULL row, message or content has no words."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .text import normalize_unicode

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.values
    if pa.types.is_struct(values.type):
        values = values.flatten()[values.type.get_field_index("content")]
    if values.null_count:
        values = pc.fill_null(values, "")
    bounds = column.offsets.to_numpy().astype(np.int64)
    starts, ends = bounds[:-1], bounds[1:]
    if column.null_count:  # a NULL row's offsets may span messages: none are its
        ends = np.where(column.is_valid().to_numpy(zero_copy_only=False), ends, starts)
    offsets, data = _buffers(values)
    rows, found, other = message_hits(starts, ends, offsets, data, TABLE, bits, mask, grams, n,
                                      True)
    if len(other):  # not ASCII: the joined text, normalised (``text_hits``)
        joined = pc.binary_join(type(column).from_arrays(column.offsets, values)
                                .take(pa.array(other)), "\n")
        again = normalize_unicode(joined)
        more, more_found, _ = row_hits(*_buffers(again), TABLE, bits, mask, grams, n, False)
        rows, found = np.r_[rows, other[more]], np.r_[found, more_found]
    return rows, found
