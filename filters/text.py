"""SQL expressions that turn rows into comparable text, shared by dedup and decontamination.

Normalisation (the same on both sides of any comparison): lower case, words are maximal
runs of Unicode letters and digits (punctuation and whitespace separate words).  Word
hashes are DuckDB's 64-bit ``hash()`` of each word, computed in C++ over the whole column;
Python only ever sees arrays of integers.

Why a UDF: splitting on the regex ``[^\\p{L}\\p{N}]+`` costs RE2 ~130 ns per match, i.e.
per word (17 s for 1M prompts here).  ``normalize`` gives the same words in one byte
translation per Arrow batch for ASCII texts (~1 ns a byte) and keeps the regex only for
the texts that are not ASCII; DuckDB then splits on single spaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from thinkforge.manifests.duck import connection_threads
from thinkforge.manifests.errors import ConfigError

from .minhash import flat_lists
from .overlap import read_ahead

WORD_SPLIT = r"[^\p{L}\p{N}]+"
MESSAGES_TEXT = "array_to_string(list_transform({col}, lambda m: m.content), chr(10))"
NORMALIZE = "tf_normalize"
SKETCH = "tf_sketch"
# ASCII letters and digits to lower case, every other ASCII byte to a space; bytes >= 0x80
# (inside multi-byte characters) unchanged: texts that are not all ASCII take the regex
_ASCII_TABLE = bytes(ord(chr(b).lower()) if chr(b).isalnum() else 0x20 for b in range(128)) \
    + bytes(range(128, 256))


def normalize(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lower-cased ``texts`` with every character that is not a letter or digit replaced by
    a space (runs of spaces stay: split on ' ' and drop empty words)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type != pa.string():
        texts = texts.cast(pa.string())
    if texts.offset:  # a slice shares its parent's data buffer: translate only its own bytes
        texts = pa.concat_arrays([texts])
    validity, offsets, data = texts.buffers()
    if data is None:  # all null or all empty
        return texts
    out = pa.Array.from_buffers(pa.string(), len(texts), [
        validity, offsets, pa.py_buffer(data.to_pybytes().translate(_ASCII_TABLE))],
        texts.null_count, texts.offset)
    other = pc.invert(pc.fill_null(pc.string_is_ascii(texts), True))
    if pc.any(other).as_py():
        out = pc.replace_with_mask(out, other, normalize_unicode(texts.filter(other)))
    return out


def normalize_unicode(texts: pa.Array) -> pa.Array:
    """``normalize`` for any text (what it does for the texts that are not ASCII)."""
    return pc.replace_substring_regex(pc.utf8_lower(texts), WORD_SPLIT, " ")


# ASCII: lower case, every byte that is not a letter or digit deleted (what sketch hashes)
_LOWER_TABLE = bytes(ord(chr(b).lower()) if b < 128 else b for b in range(256))
_NOT_ALNUM = bytes(b for b in range(128) if not chr(b).isalnum())
SKETCH_WINDOW = 512   # characters at each end of a text that the sketch reads
SKETCH_LETTERS = 96   # letters and digits it hashes at each end


def _letters(texts: pa.Array) -> list[bytes]:
    """Each text's normalised words with the separators removed (UTF-8): "L" below."""
    texts = pc.fill_null(texts, "")
    if texts.offset:
        texts = pa.concat_arrays([texts])
    _, offsets, data = texts.buffers()
    if data is None or len(texts) == 0:
        return [b""] * len(texts)
    off = np.frombuffer(offsets, dtype=np.int32)[:len(texts) + 1].tolist()
    buf = data.to_pybytes()
    translate = bytes.translate
    out = [translate(buf[lo:hi], _LOWER_TABLE, _NOT_ALNUM) for lo, hi in pairwise(off)]
    other = np.flatnonzero(pc.invert(pc.string_is_ascii(texts)).to_numpy(zero_copy_only=False))
    if len(other):  # not ASCII: the regex normalisation, then the spaces removed
        normal = normalize(texts.take(pa.array(other))).to_pylist()
        for i, text in zip(other.tolist(), normal, strict=True):
            out[i] = text.replace(" ", "").encode()
    return out


def _ends(letters: bytes) -> tuple[bytes, bytes]:
    """The first and last SKETCH_LETTERS characters of L (UTF-8: cut on characters)."""
    if letters.isascii():
        return letters[:SKETCH_LETTERS], letters[-SKETCH_LETTERS:]
    text = letters.decode()
    return text[:SKETCH_LETTERS].encode(), text[-SKETCH_LETTERS:].encode()


def _enough(letters: bytes) -> bool:
    return (len(letters) if letters.isascii() else len(letters.decode())) >= SKETCH_LETTERS


def sketch(head: pa.Array | pa.ChunkedArray, tail: pa.Array | pa.ChunkedArray,
           whole: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A 64-bit hash of the first and last SKETCH_LETTERS letters and digits of a text's
    normalised words (L: the words with the separators removed), read from ``head`` and
    ``tail`` (the text's first and last SKETCH_WINDOW characters; ``whole``: they are the
    whole text).

    Equal ``normalize`` word lists give equal L and so equal sketches (not the converse:
    "ab c" and "a bc" share one); a sketch depends on L only, never on how the text is laid
    out.  NULL when the windows hold too few letters to know L's ends (a text that does not
    fit its windows and is mostly separators): compute it again from the whole text.  Exact
    dedup computes the exact key only for rows whose sketch repeats.  Equal within one
    process only (Python's salted bytes hash)."""
    head, tail, whole = (x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x
                         for x in (head, tail, whole))
    heads, tails = _letters(head.cast(pa.string())), _letters(tail.cast(pa.string()))
    out = []
    for h, t, w in zip(heads, tails, pc.fill_null(whole, False).to_pylist(), strict=True):
        if w:  # the head is the text: L is known
            out.append(hash(_ends(h)))
        elif _enough(h) and _enough(t):
            out.append(hash((_ends(h)[0], _ends(t)[1])))
        else:
            out.append(None)
    return pa.array(out, pa.int64())


def sketch_expr(text: str) -> str:
    """SQL: the sketch of ``text`` (NULL: recompute with ``sketch_whole_expr``)."""
    return (f"{SKETCH}(left({text}, {SKETCH_WINDOW}), right({text}, {SKETCH_WINDOW}), "
            f"strlen({text}) <= {SKETCH_WINDOW})")


def sketch_whole_expr(text: str) -> str:
    return f"{SKETCH}({text}, {text}, true)"


def register(con) -> None:
    """Make ``tf_normalize(VARCHAR)`` and ``tf_sketch(VARCHAR)`` callable on ``con``."""
    from duckdb.sqltypes import BIGINT, BOOLEAN, VARCHAR

    con.create_function(NORMALIZE, normalize, [VARCHAR], VARCHAR, type="arrow")
    con.create_function(SKETCH, sketch, [VARCHAR, VARCHAR, BOOLEAN], BIGINT, type="arrow",
                        null_handling="special")


def text_expr(field: str, columns: list[str]) -> str:
    """The text to compare for ``field`` ('input' or 'output') of a kind with ``columns``."""
    if field not in columns:
        raise ConfigError(f"this version has no {field!r} column to compare",
                          hint=f"its columns: {', '.join(columns)}; choose --on input or output")
    return MESSAGES_TEXT.format(col=field) if field == "input" else f"coalesce({field}, '')"


def _split(text: str) -> str:
    # runs of separators leave empty words: dropped by list_filter or, cheaper, in numpy
    return f"string_split({NORMALIZE}({text}), ' ')"


def words_expr(text: str) -> str:
    """List of normalised words of ``text`` (needs ``register`` on the connection)."""
    return f"list_filter({_split(text)}, lambda w: w <> '')"


def word_hashes_expr(text: str) -> str:
    """List of UBIGINT word hashes of ``text`` in order, *with* the hash of each empty word:
    read it through ``word_hash_batches``, which drops them."""
    return f"list_transform({_split(text)}, lambda w: hash(w))"


def pre_key_expr(text: str) -> str:
    """SQL: the exact-duplicate *pre*-key of ``text``, DuckDB's 64-bit hash of its word list:
    equal normalised texts have equal pre-keys (not the converse), so the exact key
    (``normalized_expr``'s md5) is needed only where a pre-key repeats.  In the same SELECT
    as ``word_hashes_expr`` DuckDB splits the text once for both (near dedup); exact dedup
    alone uses ``sketch_expr``, which reads only the ends of long texts."""
    return f"hash({words_expr(text)})"


def normalized_expr(text: str) -> str:
    """Text with case and punctuation removed and words single-spaced (exact dedup key)."""
    return f"array_to_string({words_expr(text)}, ' ')"


def word_hash_batches(con, select_sql: str, batch_rows: int
                      ) -> Iterator[tuple[pa.RecordBatch, pa.ListArray]]:
    """Each batch of ``select_sql`` and its column ``words`` (a ``word_hashes_expr``) as
    list<uint64> without empty words.

    DuckDB computes the next batch in a background thread while the caller works on this
    one (DuckDB releases the GIL; numpy mostly does too): ~25% faster end to end.
    """
    empty = np.uint64(con.execute("SELECT hash('')").fetchall()[0][0])
    for batch in prefetched(con, select_sql, batch_rows):
        yield batch, drop_words(batch.column("words"), empty)


def prefetched(con, select_sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The batches of ``select_sql``, the next one computed ahead (``read_ahead``)."""
    background = not single_threaded(con)  # asked before the reader holds the connection
    yield from read_ahead(iter(con.sql(select_sql).to_arrow_reader(batch_rows)), background)


def single_threaded(con) -> bool:
    return connection_threads(con) <= 1


def drop_words(words: pa.ListArray, hash_: np.uint64) -> pa.ListArray:
    """``words`` (lists of word hashes) without the entries equal to ``hash_``."""
    words = words.cast(pa.list_(pa.uint64()))
    values, offsets = flat_lists(words)
    keep = values != hash_
    if keep.all():
        return words
    kept_before = np.r_[0, np.cumsum(keep)]
    return pa.ListArray.from_arrays(pa.array(kept_before[offsets], pa.int32()),
                                    pa.array(values[keep], pa.uint64()))
