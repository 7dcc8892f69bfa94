"""Values for import: templates over source columns, coercion to the target schema's types,
message lists and stable prompt ids (the per-value rules behind ``thinkforge.curation.importer``).

Templates name columns in braces and nothing else: ``\\n`` and ``\\t`` in a template are a
newline and a tab, ``\\\\`` a backslash; ``{{`` and ``}}`` are literal braces; format specs and
conversions (``{a:d}``, ``{a!r}``) are refused.  A column's value in a template is its text:
a string as it is, a number as written, an object or list as JSON (never a Python repr),
null as nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C encoder
from typing import Any

import pyarrow as pa
from thinkforge.manifests.errors import ConfigError

from .readers import RowError

DEFAULT_VERIFIER = {"math": "math", "code": "code", "instruction_following": "ifeval"}


def _no_default(value: Any) -> Any:
    raise TypeError(type(value).__name__)


# the C encoder json.dumps(ensure_ascii=False, sort_keys=True, allow_nan=False) uses, called
# without dumps' per-call Python layers (metadata is encoded once per row)
_c_encode_sorted = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _no_default, encode_basestring, None, ": ", ", ", True, False, False)


def _dumps_plain(value: Any) -> str:
    return "".join(_c_encode_sorted(value, 0))

_dumps = json.JSONEncoder(ensure_ascii=False).encode
_ESCAPE = re.compile(r"\\(\\|n|t)")


# -- templates --------------------------------------------------------------------------------
def unescape(spec: str) -> str:
    """``\\n`` -> newline, ``\\t`` -> tab, ``\\\\`` -> backslash; other backslashes stay."""
    return _ESCAPE.sub(lambda m: {"\\": "\\", "n": "\n", "t": "\t"}[m.group(1)], spec)


def is_template(spec: str) -> bool:
    return "{" in spec or "}" in spec


class Template:
    """``"{title}\\n\\n{body}"``: literal text and column names, nothing else."""

    def __init__(self, spec: str, where: str):
        self.spec = spec
        text = unescape(spec)
        self.pieces: list[tuple[str, str | None]] = []
        literal, i = [], 0
        fix = "write {{ and }} for literal braces; a template only names columns, e.g. \"{title}\\n\\n{body}\""
        while i < len(text):
            c = text[i]
            if c in "{}" and text[i + 1:i + 2] == c:
                literal.append(c)
                i += 2
            elif c == "}":
                raise ConfigError(f"{where}: template {spec!r}: unmatched '}}' at character {i + 1}", hint=fix)
            elif c == "{":
                end = text.find("}", i + 1)
                if end < 0:
                    raise ConfigError(f"{where}: template {spec!r}: '{{' at character {i + 1} is never "
                                      "closed", hint=fix)
                name = text[i + 1:end]
                if "{" in name:
                    raise ConfigError(f"{where}: template {spec!r}: '{{' inside a column name at "
                                      f"character {i + 1}", hint=fix)
                for mark, what in ((":", "format spec"), ("!", "conversion")):
                    if mark in name:
                        raise ConfigError(
                            f"{where}: template {spec!r}: {{{name}}} has a {what} "
                            f"({mark}{name.split(mark, 1)[1]}); templates take column names only",
                            hint=f"write {{{name.split(mark, 1)[0]}}}; values are inserted as text")
                if not name.strip():
                    raise ConfigError(f"{where}: template {spec!r}: empty braces at character {i + 1}",
                                      hint="name a column inside the braces, or write {{}} for literal braces")
                self.pieces.append(("".join(literal), name))
                literal = []
                i = end + 1
            else:
                literal.append(c)
                i += 1
        self.pieces.append(("".join(literal), None))
        self.columns = [n for _, n in self.pieces if n is not None]

    def render(self, row: dict[str, Any]) -> str:
        out = []
        for literal, name in self.pieces:
            out.append(literal)
            if name is not None:
                out.append(as_text(row.get(name)))
        return "".join(out)


def as_text(value: Any) -> str:
    """A value as it reads in a template: JSON for objects and lists, never a Python repr."""
    if value is None or (type(value) is float and value != value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return _dumps(jsonable(value))


def dumps_sorted(value: Any) -> str:
    """JSON text of an object with sorted keys; NaN/inf as null, odd types as text."""
    try:
        return _dumps_plain(value)
    except (ValueError, TypeError):
        return _dumps_plain(jsonable(value))


def jsonable(value: Any) -> Any:
    """Values JSON can hold: NaN/inf -> null, bytes -> text, dates -> ISO text."""
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


# -- values -----------------------------------------------------------------------------------
def coerce(value: Any, type_: pa.DataType, column: str) -> Any:
    """Bring one JSON/CSV value to the schema's type, or raise RowError saying why."""
    if value is None or (type(value) is float and value != value):  # NaN is missing, not 'nan'
        return None
    kind = type(value).__name__
    if pa.types.is_string(type_):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if column == "metadata" and isinstance(value, dict):
            return dumps_sorted(value)
        raise RowError(f"wrong type: {column}: expected text, got {kind} {str(value)[:60]!r}")
    if pa.types.is_boolean(type_):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise RowError(f"wrong type: {column}: expected true/false, got {kind} {str(value)[:60]!r}")
    if pa.types.is_integer(type_):
        if isinstance(value, bool):
            raise RowError(f"wrong type: {column}: expected an integer, got a boolean")
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value) if len(value) < 30 else 1 << 64
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            if not -(1 << 63) <= value < (1 << 63):
                raise RowError(f"invalid value: {column}: {str(value)[:30]}... is outside the 64-bit "
                               "integer range")
            return value
        raise RowError(f"wrong type: {column}: expected an integer, got {kind} {str(value)[:60]!r}")
    if pa.types.is_floating(type_):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise RowError(f"wrong type: {column}: expected a number, got {value[:60]!r}") from None
            return None if number != number else number
        _bad(column, "a number", value)
    if pa.types.is_list(type_):  # chat messages
        return _messages(value, column)
    raise RowError(f"wrong type: {column}: unsupported type {type_}")


def _bad(column: str, expected: str, value: Any):
    raise RowError(f"wrong type: {column}: expected {expected}, got {type(value).__name__} {str(value)[:60]!r}")


def _messages(value: Any, column: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f"missing value: {column} is empty text")
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value):
        unknown = sorted({m["role"] for m in value} - set(CHAT_ROLES))
        if unknown:
            raise RowError(f"invalid value: {column}: unknown chat role(s) {unknown[:3]} "
                           f"(roles: {', '.join(CHAT_ROLES)})")
        return [{"role": m["role"], "content": m["content"]} for m in value]
    _bad(column, "text or a list of {role, content} messages", value)


# the roles chat templates know (a tokenizer's template fails or drops anything else)
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")


def stable_id(source: str, messages: list[dict[str, str]]) -> str:
    payload = json.dumps([source, messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def user_ids(sources: list[str], contents: list[str], ids: list[str | None]) -> None:
    """``stable_id(source, [{"role": "user", "content": c}])`` where ``ids`` has None, without
    building the dicts (the same JSON text: see test_import's id test)."""
    sha256 = hashlib.sha256
    if len(set(sources)) == 1 and sources[0] and all(pid is None for pid in ids):  # the usual batch
        prefix = "[" + encode_basestring(sources[0]) + ', [{"content": '
        ids[:] = [sha256((prefix + encode_basestring(c) + ', "role": "user"}]]').encode()).hexdigest()[:16]
                  for c in contents]
        return
    prefixes: dict[str, str] = {}
    for i, pid in enumerate(ids):
        if pid is None and sources[i]:
            source = sources[i]
            prefix = prefixes.get(source)
            if prefix is None:
                prefix = prefixes[source] = "[" + encode_basestring(source) + ', [{"content": '
            payload = prefix + encode_basestring(contents[i]) + ', "role": "user"}]]'
            ids[i] = sha256(payload.encode()).hexdigest()[:16]


def column_of(values: list[Any], type_: pa.DataType, name: str) -> list[Any]:
    """``coerce`` over a column, skipping the values already of the right type."""
    types = set(map(type, values))
    if pa.types.is_string(type_):
        ok = {str, type(None)}
    elif pa.types.is_integer(type_):
        ok = {int, type(None)}
    elif pa.types.is_boolean(type_):
        ok = {bool, type(None)}
    elif pa.types.is_floating(type_):
        ok = {float, type(None)} if not any(v != v for v in values if type(v) is float) else set()
    else:
        ok = set()
    if types <= ok:
        return values
    return [coerce(v, type_, name) for v in values]
