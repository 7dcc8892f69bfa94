"""Manifests read without pydantic, for the query path (``thinkforge sql``, ``run_sql``).

Importing pydantic and building the manifest models costs ~65 ms of a ~600 ms `thinkforge
sql`; a query only reads manifests.  ``read_manifest`` parses ``manifest.json`` with plain
``json`` into small read-only records with the attributes of ``manifest.Manifest`` (same
field names, defaults and nesting) and checks what the model's validation checks: every
required field present, no unknown field, each value of its declared JSON type (strictly:
the model would also take ``"3"`` for an integer; thinkforge never writes one).  Writing,
publishing and full verification keep the pydantic model (``manifest.py``);
``tests/manifests/test_records.py`` holds the two field lists equal.

Also here (no pydantic): ``sha256_file``, ``utc_now``, ``created_by``, re-exported by
``manifest.py`` where they always lived.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import InputDataError

_REQUIRED = object()


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _dict(v: Any) -> bool:
    return isinstance(v, dict)


def _list_of(check):
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


class _Record:
    """Fields from ``_FIELDS``: name -> (JSON key, check or record class, default).

    A nested record is checked recursively; a default is a value or a zero-argument factory
    (``list``, ``dict``).  Instances are read-only."""

    __slots__ = ()
    _FIELDS: dict[str, tuple[str, Any, Any]] = {}

    @classmethod
    def parse(cls, data: Any, where: str) -> _Record:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        keys = {key for key, _, _ in cls._FIELDS.values()}
        if unknown := sorted(set(data) - keys):
            raise ValueError(f"{where}: unknown field {unknown[0]!r}")
        obj = object.__new__(cls)
        for attr, (key, check, default) in cls._FIELDS.items():
            if key not in data:
                if default is _REQUIRED:
                    raise ValueError(f"{where}: field {key!r} is missing")
                value = default() if callable(default) else default
            else:
                value = _parse_value(data[key], check, f"{where}.{key}")
            object.__setattr__(obj, attr, value)
        return obj

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object it was read from, defaults filled (``model_dump(by_alias=True)``)."""
        return {key: _dump(getattr(self, attr)) for attr, (key, _, _) in self._FIELDS.items()}


def _parse_value(value: Any, check: Any, where: str) -> Any:
    optional = isinstance(check, tuple)  # (check,) : the value may also be null
    if optional:
        check = check[0]
        if value is None:
            return None
    if isinstance(check, list):  # [RecordClass]: a list of records
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        return [check[0].parse(x, f"{where}[{i}]") for i, x in enumerate(value)]
    if isinstance(check, type) and issubclass(check, _Record):
        return check.parse(value, where)
    if not check(value):
        raise ValueError(f"{where}: unexpected value {value!r:.60}")
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_dump(x) for x in value]
    return value


def _record(name: str, fields: dict[str, tuple[str, Any, Any]], **methods) -> type[_Record]:
    return type(name, (_Record,), {"__slots__": tuple(fields), "_FIELDS": fields, **methods})


FileEntry = _record("FileEntry", {
    "path": ("path", _str, _REQUIRED), "rows": ("rows", _int, _REQUIRED),
    "bytes": ("bytes", _int, _REQUIRED), "sha256": ("sha256", _str, _REQUIRED)})
ParentRef = _record("ParentRef", {
    "name": ("name", _str, _REQUIRED), "version": ("version", _str, _REQUIRED),
    "fingerprint": ("fingerprint", _str, _REQUIRED)},
    ref=property(lambda self: f"{self.name}@{self.version}"))
Step = _record("Step", {"type": ("type", _str, _REQUIRED), "config": ("config", _dict, dict)})
Rejected = _record("Rejected", {
    "rows": ("rows", _int, 0), "by_reason": ("by_reason", _dict, dict),
    "files": ("files", [FileEntry], list)})
Selection = _record("Selection", {
    "base": ("base", ParentRef, _REQUIRED), "base_columns": ("base_columns", _list_of(_str), _REQUIRED),
    "base_files": ("base_files", [FileEntry], _REQUIRED),
    "base_digests": ("base_digests", FileEntry, _REQUIRED),
    "used": ("used", _list_of(_int), _REQUIRED), "file": ("file", FileEntry, _REQUIRED),
    "columns": ("columns", _list_of(_str), list), "rejected": ("rejected", (FileEntry,), None),
    "rejected_columns": ("rejected_columns", _list_of(_str), list),
    "rejected_extra": ("rejected_extra", _list_of(_str), list),
    "ascending": ("ascending", _bool, False)})


def _as_parent(self) -> Any:
    return ParentRef.parse({"name": self.name, "version": self.version,
                            "fingerprint": self.fingerprint}, self.ref)


ManifestRecord = _record("ManifestRecord", {
    "manifest_version": ("manifest_version", _int, 1), "name": ("name", _str, _REQUIRED),
    "version": ("version", _str, _REQUIRED), "kind": ("kind", _str, _REQUIRED),
    "fingerprint": ("fingerprint", _str, _REQUIRED), "created_at": ("created_at", _str, _REQUIRED),
    "created_by": ("created_by", _dict, _REQUIRED), "parents": ("parents", [ParentRef], list),
    "step": ("step", Step, _REQUIRED), "schema_": ("schema", _list_of(_dict), _REQUIRED),
    "files": ("files", [FileEntry], _REQUIRED), "rows": ("rows", _int, _REQUIRED),
    "stats": ("stats", _dict, dict), "rejected": ("rejected", Rejected, lambda: Rejected.parse({}, "")),
    "provenance": ("provenance", _dict, dict), "digests": ("digests", (FileEntry,), None),
    "selection": ("selection", (Selection,), None), "digest_scheme": ("digest_scheme", _int, 1)},
    ref=property(lambda self: f"{self.name}@{self.version}"),
    number=property(lambda self: int(self.version[1:])),
    as_parent=_as_parent)


def read_manifest(path: Path) -> Any:
    """``manifest.json`` as a ``ManifestRecord``; a damaged one is an InputDataError, as
    ``Manifest.load`` reports it."""
    try:
        return ManifestRecord.parse(json.loads(Path(path).read_bytes()), "manifest")
    except (ValueError, OSError) as exc:  # json's errors are ValueErrors
        raise InputDataError(
            f"cannot read manifest {path}: {exc}",
            hint="the manifest is the source of truth; restore it from a backup or delete "
                 "the version directory") from exc


RUNS_DIRNAME = "training-runs"  # training run records (training_runs.py): <store>/training-runs/<id>/
RUN_ID_RE = re.compile(r"^run-[a-z0-9][a-z0-9_.-]*$")


def run_ids(store_root: Path) -> list[str]:
    """The ids of the store's training run records, without reading them (no pydantic)."""
    root = Path(store_root) / RUNS_DIRNAME
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if RUN_ID_RE.match(p.name) and (p / "run.json").is_file())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def created_by() -> dict[str, Any]:
    from . import __version__

    return {"tool": "thinkforge", "tool_version": __version__, "git_sha": _git_sha(),
            "host": platform.node(), "python": platform.python_version(), "pid": os.getpid()}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@functools.cache
def _git_sha() -> str | None:
    """The git commit of the thinkforge source tree, when it runs from a checkout (asked
    once per process: a `git` subprocess per publish cost ~10 ms)."""
    here = Path(__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None  # None before the first commit
