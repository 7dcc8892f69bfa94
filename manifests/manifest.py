"""The manifest: the source of truth for one immutable dataset version (docs/concepts.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import InputDataError

# re-exported: they lived here before ``records.py`` (which imports no pydantic)
from .records import _git_sha, created_by, sha256_file, utc_now  # noqa: F401

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST_VERSION = 1


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="path relative to the version directory")
    rows: int
    bytes: int
    sha256: str


class ParentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    fingerprint: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Step(BaseModel):
    """What produced the version, with its full resolved config, so it can be rebuilt."""

    model_config = ConfigDict(extra="forbid")
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class Rejected(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)
    files: list[FileEntry] = Field(default_factory=list)


class Selection(BaseModel):
    """A version stored as positions in a materialised base version (``manifests/selection.py``).

    Its rows are the base rows at (``_shard``, ``_row``) of ``file``, in the file's order,
    with ``columns`` taken from the file (added or changed columns) and every other column
    from the base.  A selection of a selection stores positions in the same base.
    """

    model_config = ConfigDict(extra="forbid")
    base: ParentRef = Field(description="the materialised version whose shards hold the rows")
    base_columns: list[str] = Field(description="the base's columns, in order")
    base_files: list[FileEntry] = Field(
        description="the base's data shards (paths relative to the store root); _shard indexes it")
    base_digests: FileEntry = Field(description="the base's row digests (relative to the store root)")
    used: list[int] = Field(description="rows this version takes from each base shard")
    file: FileEntry = Field(description="(_shard, _row[, columns]) in the version's order")
    columns: list[str] = Field(default_factory=list,
                               description="columns stored in the file, not read from the base")
    rejected: FileEntry | None = Field(
        None, description="rejected rows as positions + reason + explaining columns")
    rejected_columns: list[str] = Field(default_factory=list,
                                        description="the columns the rejected view shows before reason")
    rejected_extra: list[str] = Field(default_factory=list,
                                      description="columns stored in the rejected file after reason")
    ascending: bool = Field(
        False, description="positions strictly increase in the file's order: the version's order "
                           "is its base's, so a read of base columns only is a filter of the base "
                           "rows (no join)")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manifest_version: int = MANIFEST_VERSION
    name: str
    version: str
    kind: str
    fingerprint: str
    created_at: str
    created_by: dict[str, Any]
    parents: list[ParentRef] = Field(default_factory=list)
    step: Step
    schema_: list[dict[str, Any]] = Field(alias="schema")
    files: list[FileEntry]
    rows: int
    stats: dict[str, Any] = Field(default_factory=dict)
    rejected: Rejected = Field(default_factory=Rejected)
    provenance: dict[str, Any] = Field(
        default_factory=dict,
        description="step-specific facts: models, tokens, wall time, verifier versions...")
    digests: FileEntry | None = Field(
        None, description="one 64-bit digest per row (digests.parquet); the fingerprint is over them")
    selection: Selection | None = Field(
        None, description="set when the version is a selection over a base version's shards")
    digest_scheme: int = Field(
        1, description="how the row digests were computed (thinkforge.manifests.selection.DIGEST_SCHEME); "
        "manifests written before the field was added used scheme 1")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def number(self) -> int:
        return int(self.version[1:])

    def as_parent(self) -> ParentRef:
        return ParentRef(name=self.name, version=self.version, fingerprint=self.fingerprint)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True), indent=2, sort_keys=False) + "\n"

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise InputDataError(
                f"cannot read manifest {path}: {exc}",
                hint="the manifest is the source of truth; restore it from a backup or delete "
                     "the version directory") from exc


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def fingerprint(schema: pa.Schema, shard_hashes: list[str]) -> str:
    """The fingerprint of versions published before row digests (schema + shard hashes).

    Versions published now use ``thinkforge.manifests.selection.content_fingerprint``: over the schema
    and the rows' digests, so a selection and its materialised twin get the same one."""
    h = hashlib.sha256()
    h.update(json.dumps(schema_to_json(schema), sort_keys=True).encode())
    for digest in shard_hashes:
        h.update(digest.encode())
    return h.hexdigest()

