"""SQL expressions that turn rows into comparable text, shared by dedup and decontamination.

Normalisation (the same on both sides of any comparison): lower case, words are maximal
runs of Unicode letters and digits (punctuation and whitespace separate words).  Word
hashes are DuckDB's 64-bit ``hash()`` of each word, computed in C++ over the whole column;
Python only ever sees arrays of integers.
"""

from __future__ import annotations

from manifests.errors import ConfigError

WORD_SPLIT = r"[^\p{L}\p{N}]+"
MESSAGES_TEXT = "array_to_string(list_transform({col}, lambda m: m.content), chr(10))"


def text_expr(field: str, columns: list[str]) -> str:
    """The text to compare for ``field`` ('input' or 'output') of a kind with ``columns``."""
    if field not in columns:
        raise ConfigError(f"this version has no {field!r} column to compare",
                          hint=f"its columns: {', '.join(columns)}; choose --on input or output")
    return MESSAGES_TEXT.format(col=field) if field == "input" else f"coalesce({field}, '')"


def words_expr(text: str) -> str:
    """List of normalised words of ``text``."""
    return (f"list_filter(string_split_regex(lower({text}), '{WORD_SPLIT}'), "
            "lambda w: w <> '')")


def word_hashes_expr(text: str) -> str:
    """List of UBIGINT word hashes of ``text``, in order."""
    return f"list_transform({words_expr(text)}, lambda w: hash(w))"


def normalized_expr(text: str) -> str:
    """Text with case and punctuation removed and words single-spaced (exact dedup key)."""
    return f"array_to_string({words_expr(text)}, ' ')"
