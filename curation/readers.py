"""Read source rows from JSONL, JSON, Parquet, CSV and local Hugging Face datasets, streaming.

``read_batches`` yields lists of ``(number, row)``: ``number`` the row's line (JSONL, CSV),
item (JSON) or row (Parquet, HF) number, ``row`` a dict, or a ``SourceRowError`` for a row
that cannot be parsed, so the importer decides between failing and recording it as
rejected.  ``location(fmt, number)`` turns a number into the words errors use ("line 12").
Nothing reads a whole file into memory except a ``.json`` array (one JSON document).

Values are read as they are, with three exceptions that keep bad bytes out of the store:
JSON's non-standard ``NaN`` / ``Infinity`` are read as missing (null), an integer longer
than Python converts (4300 digits) is kept as its digits (text), and a lone UTF-16
surrogate escape (``"\\ud800"``, not a character) makes the row malformed.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from thinkforge.manifests.errors import ConfigError, InputDataError, NotFoundError, require

FORMATS = ("jsonl", "json", "parquet", "csv", "hf")
BATCH_ROWS = 10_000
LABELS = {"jsonl": "line", "csv": "line", "json": "item", "parquet": "row", "hf": "row"}
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_CSV_FIELD_LIMIT = 1 << 30  # the csv module's default (131,072 characters) is far too small


class RowError(Exception):
    """A problem with one source row: fatal with --on-error fail, rejected with skip.

    Lives here (not in the importer) so that presets can raise it without importing the
    importer, which imports the presets."""


@dataclass
class SourceRowError:
    reason: str
    raw: str


class BigInt(str):
    """An integer literal too long for ``int()``: kept as its digits (text)."""


def location(fmt: str, number: int) -> str:
    return f"{LABELS.get(fmt, 'row')} {number}"


def detect_format(path: Path) -> str:
    """From the extension; a folder is a Hugging Face dataset unless its name says otherwise."""
    suffix = path.suffix.lower()
    for fmt, suffixes in {"jsonl": (".jsonl", ".ndjson"), "json": (".json",),
                          "parquet": (".parquet", ".pq"), "csv": (".csv",)}.items():
        if suffix in suffixes:
            return fmt  # a folder named like a file is refused by check_source
    if path.is_dir():
        return "hf"
    raise ConfigError(f"{path}: cannot tell the format from the extension {suffix!r}",
                      hint=f"pass --format, one of {', '.join(FORMATS)}")


def check_source(path: Path, fmt: str) -> None:
    """Errors a file can have before its first row: missing, a directory, empty, unreadable."""
    if not path.exists():
        raise NotFoundError(f"{path}: no such file or directory")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if fmt == "hf":
        if not path.is_dir():
            raise InputDataError(f"{path}: --format hf wants a folder written by save_to_disk, "
                                 "not a file", hint=f"for a file use --format {_guess(path)}")
        return
    if path.is_dir():
        raise InputDataError(f"{path}: is a directory, not a {fmt} file",
                             hint="give a file, or --format hf for a Hugging Face dataset saved "
                                  "with save_to_disk")
    if not path.is_file():
        raise InputDataError(f"{path}: not a regular file", hint="give a file with rows")
    if path.stat().st_size == 0:
        raise InputDataError(f"{path}: the file is empty", hint="point at a file with rows")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise InputDataError(f"{path}: cannot be read ({exc.strerror or exc})",
                             hint="check the file's permissions") from exc


def _guess(path: Path) -> str:
    try:
        return detect_format(path)
    except ConfigError:
        return "jsonl"


def read_batches(path: Path, fmt: str | None = None, batch_rows: int | None = None
                 ) -> Iterator[list[tuple[int, dict[str, Any] | SourceRowError]]]:
    fmt = fmt or detect_format(path)
    batch_rows = batch_rows or BATCH_ROWS
    check_source(path, fmt)
    reader = {"jsonl": _jsonl, "json": _json, "parquet": _parquet, "csv": _csv, "hf": _hf}[fmt]
    batch: list[tuple[int, dict[str, Any] | SourceRowError]] = []
    try:
        for item in reader(path, batch_rows):
            if isinstance(item, list):  # readers of columnar files yield whole batches
                if batch:
                    yield batch
                    batch = []
                yield item
                continue
            batch.append(item)
            if len(batch) >= batch_rows:
                yield batch
                batch = []
    except OSError as exc:  # a file that vanished or a disk error while reading
        raise InputDataError(f"{path}: read failed ({exc.strerror or exc})") from exc
    if batch:
        yield batch


def read_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[str, dict[str, Any] | SourceRowError]]:
    """Rows one at a time as ``(where, row)`` (``where`` like "line 12")."""
    fmt = fmt or detect_format(path)
    for batch in read_batches(path, fmt):
        for number, row in batch:
            yield location(fmt, number), row


def _big_int(text: str) -> int | BigInt:
    try:
        return int(text)
    except ValueError:  # over sys.get_int_max_str_digits()
        return BigInt(text)


def _nan_as_null(_constant: str) -> None:
    return None


_DECODER = json.JSONDecoder(parse_constant=_nan_as_null)
_BIG_DECODER = json.JSONDecoder(parse_constant=_nan_as_null, parse_int=_big_int)


def loads(raw: str) -> Any:
    """json.loads with the three exceptions of the module docstring (ValueError if malformed)."""
    try:
        value = _DECODER.decode(raw)
    except RecursionError:
        raise ValueError(f"nested too deep: more than about {sys.getrecursionlimit()} levels of "
                         "arrays/objects") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of more digits than int() converts
        if "digits" not in str(exc):
            raise
        value = _BIG_DECODER.decode(raw)
    if "\\u" in raw and _SURROGATE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"lone surrogate escape: {exc.object[exc.start]!r} is half of a UTF-16 "
                             "pair, not a character") from None
    return value


def _decode_error(path: Path, raw: bytes, where: str, offset: int, exc: UnicodeDecodeError):
    return InputDataError(
        f"{path}, {where}: not valid UTF-8 (byte {offset + exc.start} of the file: "
        f"{raw[exc.start:exc.start + 4]!r})",
        hint="convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8")


@dataclass
class LineBatch:
    """``batch_rows`` non-blank lines of a JSONL file, as bytes (blank lines inside included).

    ``plain``: every line is one ``{...}`` (no BOM, no leading blank, at most a ``\\r``
    after it), so a columnar parser (``thinkforge.curation.columnar``) may read the bytes whole; any
    other batch is parsed line by line by ``rows``, which is also what the columnar path
    falls back to, so batch boundaries (and hence row groups) never depend on the parser.
    """

    data: bytes
    offset: int  # of data[0] in the file
    numbers: np.ndarray  # line numbers (from 1) of the non-blank lines
    starts: np.ndarray  # of each non-blank line in data
    ends: np.ndarray  # end of each non-blank line (after its newline, if any)
    plain: bool

    def line(self, i: int) -> bytes:
        return self.data[self.starts[i]:self.ends[i]]

    def rows(self, path: Path) -> list[tuple[int, dict[str, Any] | SourceRowError]]:
        data, offset = self.data, self.offset
        return [(number, parse_line(path, data[s:e], number, offset + s))
                for number, s, e in zip(self.numbers.tolist(), self.starts.tolist(), self.ends.tolist(),
                                        strict=True)]


def jsonl_batches(path: Path, batch_rows: int | None = None, block_bytes: int = 2 << 20
                  ) -> Iterator[LineBatch]:
    """The file as ``LineBatch``es of ``batch_rows`` non-blank lines (the last one shorter)."""
    batch_rows = batch_rows or BATCH_ROWS
    buf, offset, first_line, eof = b"", 0, 1, False
    with open(path, "rb") as f:
        while True:
            cut = _nth_line_end(buf, batch_rows)
            while cut is None and not eof:
                block = f.read(block_bytes)
                if not block:
                    eof = True
                    break
                buf += block
                cut = _nth_line_end(buf, batch_rows)
            if cut is None:  # end of file: the rest
                batch = _line_batch(buf, offset, first_line, True)
                if batch is not None:
                    yield batch
                return
            batch = _line_batch(buf[:cut], offset, first_line, False)
            if batch is not None:
                yield batch
            first_line += buf.count(b"\n", 0, cut)
            buf, offset = buf[cut:], offset + cut


def _nth_line_end(buf: bytes, n: int) -> int | None:
    """End of the ``n``-th non-blank complete line of ``buf`` (None: not that many yet)."""
    arr = np.frombuffer(buf, np.uint8)
    ends = np.flatnonzero(arr == 10) + 1
    if len(ends) < n:
        return None
    starts = np.concatenate(([0], ends[:-1]))
    blank = ~_plain(arr, starts, ends)
    if not blank.any():
        return int(ends[n - 1])
    count = 0
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if blank[i] and buf[s:e].isspace():
            continue
        count += 1
        if count == n:
            return e
    return None


def _plain(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines that are ``{...}`` then an optional ``\\r`` and newline (or end of file)."""
    if not len(starts):
        return np.zeros(0, dtype=bool)
    has_nl = arr[ends - 1] == 10
    stop = ends - has_nl  # one past the last byte before the newline
    cr = (stop > starts) & (arr[np.maximum(stop - 1, 0)] == 13)
    stop = stop - cr
    ok = stop > starts
    return ok & (arr[np.minimum(starts, len(arr) - 1)] == 123) & (arr[np.maximum(stop - 1, 0)] == 125)


def _line_batch(data: bytes, offset: int, first_line: int, eof: bool) -> LineBatch | None:
    if not data:
        return None
    arr = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(arr == 10) + 1
    if eof and len(data) and (not len(ends) or ends[-1] != len(data)):
        ends = np.append(ends, len(data))  # a last line without a newline
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
    numbers = np.arange(first_line, first_line + len(ends), dtype=np.int64)
    plain = _plain(arr, starts, ends)
    if offset == 0 and data.startswith(b"\xef\xbb\xbf") and len(plain):
        plain[0] = False  # a BOM: read line by line (it is stripped there)
    keep = plain.copy()
    for i in np.flatnonzero(~plain).tolist():
        keep[i] = not data[starts[i]:ends[i]].isspace()
    if not keep.any():
        return None
    return LineBatch(data=data, offset=offset, numbers=numbers[keep], starts=starts[keep], ends=ends[keep],
                     plain=bool(plain[keep].all()))


def parse_line(path: Path, raw: bytes, number: int, start: int) -> dict[str, Any] | SourceRowError:
    """One non-blank JSONL line (``start``: its offset in the file) as a dict or the reason not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _decode_error(path, raw, f"line {number}", start, exc) from exc
    if number == 1:
        text = text.lstrip("\ufeff")
    try:  # the C scanner on the line; anything unusual goes through loads()
        row, end = _DECODER.scan_once(text, 0)
        if end != len(text) and not text[end:].isspace() or "\\u" in text:
            raise ValueError
    except (StopIteration, ValueError, RecursionError):
        row = None
    try:
        if row is None:
            row = loads(text)
    except json.JSONDecodeError as exc:
        return SourceRowError(f"malformed JSON: column {exc.colno}: {exc.msg}",
                              raw.decode("utf-8", "replace").strip())
    except ValueError as exc:
        return SourceRowError(f"malformed JSON: {exc}", raw[:2000].decode("utf-8", "replace").strip())
    if not isinstance(row, dict):
        return SourceRowError(f"not an object: expected a JSON object, got {type(row).__name__}",
                              raw.decode("utf-8", "replace").strip())
    return row


def _jsonl(path: Path, batch_rows: int):
    for batch in jsonl_batches(path, batch_rows):
        yield batch.rows(path)


def _json(path: Path, _batch_rows: int):
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _decode_error(path, raw, f"line {line}", 0, exc) from exc
    del raw
    try:
        data = loads(text)
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{path}, line {exc.lineno}, column {exc.colno}: malformed JSON: {exc.msg}",
                             hint="a .json file holds one array of objects; use .jsonl for one "
                                  "object per line") from exc
    except ValueError as exc:
        raise InputDataError(f"{path}: malformed JSON: {exc}",
                             hint="fix the file, or write it as .jsonl (one object per line) so "
                                  "that --on-error skip can keep the bad rows aside") from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise InputDataError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    if not data:
        raise InputDataError(f"{path}: the array is empty")
    for index, row in enumerate(data):
        if isinstance(row, dict):
            yield index, row
        else:
            yield index, SourceRowError(f"not an object: expected a JSON object, got {type(row).__name__}",
                                        json.dumps(row)[:2000])


@dataclass
class ArrowBatch:
    """``table``'s rows are rows ``first``, ``first + 1``... of a Parquet file or HF dataset."""

    table: Any  # pyarrow Table or RecordBatch
    first: int

    @property
    def numbers(self) -> np.ndarray:
        return np.arange(self.first, self.first + self.table.num_rows, dtype=np.int64)

    def rows(self) -> list[tuple[int, dict[str, Any]]]:
        return list(enumerate(self.table.to_pylist(), start=self.first))


def arrow_batches(path: Path, fmt: str, batch_rows: int | None = None) -> Iterator[ArrowBatch]:
    """A Parquet file (``batch_rows`` at a time within each row group) or a Hugging Face
    dataset as Arrow batches: what ``read_batches`` turns into dicts."""
    check_source(path, fmt)
    yield from (_parquet_batches if fmt == "parquet" else _hf_batches)(path, batch_rows or BATCH_ROWS)


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[ArrowBatch]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise InputDataError(f"{path}: not a readable Parquet file ({exc})",
                             hint="check that the file is complete (not truncated) Parquet") from exc
    number = 0
    for group in range(parquet.metadata.num_row_groups):
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group]):
                yield ArrowBatch(batch, number)
                number += batch.num_rows
        except (OSError, ValueError, ArithmeticError, UnicodeDecodeError) as exc:
            # pyarrow raises ArrowInvalid / ArrowIOError / OSError on corrupt pages
            raise InputDataError(f"{path}, row group {group} (rows from {number}): corrupt "
                                 f"Parquet data ({str(exc).splitlines()[0][:200]})",
                                 hint="the file is damaged: write it again from its source") from exc


def _parquet(path: Path, batch_rows: int):
    for batch in _parquet_batches(path, batch_rows):
        yield batch.rows()


def _csv(path: Path, _batch_rows: int):
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        try:
            if not reader.fieldnames:
                raise InputDataError(f"{path}: the CSV file has no header row")
            for row in reader:
                if None in row:
                    yield reader.line_num, SourceRowError("malformed CSV: more fields than the header has",
                                                          json.dumps(row[None]))
                    continue
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise InputDataError(f"{path}, near line {reader.line_num + 1}: not valid UTF-8 "
                                 f"({exc.object[exc.start:exc.start + 4]!r})",
                                 hint="convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8") from exc
        except csv.Error as exc:
            raise InputDataError(f"{path}, line {reader.line_num + 1}: malformed CSV ({exc})",
                                 hint="check the quoting of that line") from exc


def _hf_batches(path: Path, batch_rows: int) -> Iterator[ArrowBatch]:
    datasets = require("datasets", "hf")
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise InputDataError(f"{path}: not a Hugging Face dataset saved with save_to_disk ({exc})",
                             hint="a folder is read as a Hugging Face dataset; for a file inside "
                                  "it, give the file") from exc
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise InputDataError(f"{path}: a DatasetDict without a 'train' split ({list(ds)})",
                                 hint="point at one split's folder")
        ds = ds["train"]
    number = 0
    for table in ds.with_format("arrow").iter(batch_size=batch_rows):
        yield ArrowBatch(table, number)
        number += table.num_rows


def _hf(path: Path, batch_rows: int):
    for batch in _hf_batches(path, batch_rows):
        yield batch.rows()
