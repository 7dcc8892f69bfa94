"""Read source rows from JSONL, JSON, Parquet, CSV and local Hugging Face datasets.

Each reader yields ``(where, row)`` with ``where`` a human location ("line 12", "row 7")
and ``row`` a dict, or ``(where, SourceRowError)`` for a row that cannot be parsed, so the
importer decides between failing and recording it as rejected.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from manifests.errors import ConfigError, InputDataError, NotFoundError, require

FORMATS = ("jsonl", "json", "parquet", "csv", "hf")


@dataclass
class SourceRowError:
    reason: str
    raw: str


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    for fmt, suffixes in {"jsonl": (".jsonl", ".ndjson"), "json": (".json",),
                          "parquet": (".parquet", ".pq"), "csv": (".csv",)}.items():
        if suffix in suffixes:
            return fmt
    raise ConfigError(f"{path}: cannot tell the format from the extension {suffix!r}",
                      hint=f"pass --format, one of {', '.join(FORMATS)}")


def read_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[str, dict[str, Any] | SourceRowError]]:
    if not path.exists():
        raise NotFoundError(f"{path}: no such file or directory")
    fmt = fmt or detect_format(path)
    if fmt != "hf" and path.stat().st_size == 0:
        raise InputDataError(f"{path}: the file is empty", hint="point at a file with rows")
    reader = {"jsonl": _jsonl, "json": _json, "parquet": _parquet, "csv": _csv, "hf": _hf}.get(fmt)
    if reader is None:
        raise ConfigError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    return reader(path)


def _decode(path: Path, raw: bytes, where: str, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"{path}, {where}: not valid UTF-8 (byte {offset + exc.start} of the file: "
            f"{raw[exc.start:exc.start + 4]!r})",
            hint="convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8") from exc


def _jsonl(path: Path):
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"line {number}"
            text = _decode(path, raw, where, offset).strip()
            offset += len(raw)
            if not text:
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                yield where, SourceRowError(f"malformed JSON: column {exc.colno}: {exc.msg}", text)
                continue
            if not isinstance(row, dict):
                yield where, SourceRowError(f"not an object: expected a JSON object, got {type(row).__name__}", text)
                continue
            yield where, row


def _json(path: Path):
    text = _decode(path, path.read_bytes(), "content", 0)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{path}, line {exc.lineno}, column {exc.colno}: malformed JSON: {exc.msg}",
                             hint="a .json file holds one array of objects; use .jsonl for one "
                                  "object per line") from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise InputDataError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    if not data:
        raise InputDataError(f"{path}: the array is empty")
    for index, row in enumerate(data):
        where = f"item {index}"
        if isinstance(row, dict):
            yield where, row
        else:
            yield where, SourceRowError(f"not an object: expected a JSON object, got {type(row).__name__}",
                                        json.dumps(row)[:2000])


def _parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise InputDataError(f"{path}: not a readable Parquet file ({exc})") from exc
    number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            yield f"row {number}", row
            number += 1


def _csv(path: Path):
    text = _decode(path, path.read_bytes(), "content", 0)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise InputDataError(f"{path}: the CSV file has no header row")
    for row in reader:
        where = f"line {reader.line_num}"
        if None in row:
            yield where, SourceRowError("malformed CSV: more fields than the header has", json.dumps(row[None]))
            continue
        yield where, row


def _hf(path: Path):
    datasets = require("datasets", "hf")
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise InputDataError(f"{path}: not a Hugging Face dataset saved with save_to_disk ({exc})") from exc
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise InputDataError(f"{path}: a DatasetDict without a 'train' split ({list(ds)})",
                                 hint="point at one split's folder")
        ds = ds["train"]
    for index, row in enumerate(ds):
        yield f"row {index}", row
