"""Store upkeep: ``materialize`` (a plain copy of a selection) and ``gc`` (files no version
needs).  docs/concepts.md "Versions without copies".

``gc`` finds files under ``datasets/`` that no published version reads: files in a version
directory its manifest does not list, and the files of version directories without a
``manifest.json`` (a crashed copy, or a version a user deleted by removing its manifest) —
except the shards and digests a selection still reads from such a directory.  It never
touches a file a manifest names.  It also lists what killed processes left (staging and
spill directories whose owner is gone, catalog and cache temp files: ``cleanup.py``).
Dry run by default; ``apply=True`` deletes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .cleanup import stale_paths
from .duck import connect, quote_literal
from .manifest import Manifest
from .selection import row_relation
from .store import ROW_GROUP_ROWS, VERSION_RE
from .writer import DatasetStore


def materialize(store: DatasetStore, m: Manifest, name: str) -> Manifest:
    """A plain version of ``name`` with ``m``'s rows, in order: the same fingerprint.
    Reused when ``m`` was materialised under ``name`` before."""
    store.verify(m)
    step = {"type": "materialize", "config": {"source": m.ref}}
    with store.writer(name, m.kind, step=step, parents=[m],
                      provenance={"materialized_from": m.ref}) as w:
        con = connect()
        try:
            con.execute(f"COPY (SELECT * FROM {row_relation(store, m)}) TO "
                        f"{quote_literal(str(w.new_shard_path()))} (FORMAT parquet, COMPRESSION zstd, "
                        f"ROW_GROUP_SIZE {ROW_GROUP_ROWS})").fetchall()
        finally:
            con.close()
    return w.manifest


@dataclass
class GcPlan:
    """What ``gc`` removes (path, bytes) and what it keeps because a selection reads it."""

    remove: list[tuple[Path, int]] = field(default_factory=list)
    kept_for_selections: list[Path] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self.remove)


def referenced_files(store: DatasetStore) -> set[Path]:
    """Every file a published version reads or lists (its manifest included)."""
    out: set[Path] = set()
    for m in store.manifests():
        out.add((store.version_dir(m) / "manifest.json").resolve())
        out.add((store.version_dir(m) / "manifest.sig").resolve())  # signing.py
        out.update(p.resolve() for _, _, p in store.version_files(m))
    return out


def gc_plan(store: DatasetStore) -> GcPlan:
    plan = GcPlan()
    for leftover in stale_paths(store):  # crash debris of dead processes (never a live one's)
        files = [leftover] if leftover.is_file() else [p for p in leftover.rglob("*") if p.is_file()]
        plan.remove.append((leftover, sum(p.stat().st_size for p in files)))
    if not store.datasets_dir.is_dir():
        return plan
    keep = referenced_files(store)
    for name_dir in sorted(p for p in store.datasets_dir.iterdir() if p.is_dir()):
        for vdir in sorted(p for p in name_dir.iterdir() if p.is_dir()):
            if not VERSION_RE.fullmatch(vdir.name):
                continue  # .tmp copies of pull and the like belong to their own tools
            published = (vdir / "manifest.json").is_file()
            for path in sorted(p for p in vdir.rglob("*") if p.is_file()):
                if path.resolve() in keep:
                    if not published:
                        plan.kept_for_selections.append(path)
                    continue
                plan.remove.append((path, path.stat().st_size))
    return plan


def gc(store: DatasetStore, apply: bool = False) -> GcPlan:
    """Find (and with ``apply`` delete) the files no version needs; empty directories go too."""
    plan = gc_plan(store)
    if apply:
        for path, _ in plan.remove:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for name_dir in [p for p in store.datasets_dir.iterdir() if p.is_dir()] \
                if store.datasets_dir.is_dir() else []:
            for d in sorted((p for p in name_dir.rglob("*") if p.is_dir()), reverse=True):
                if not any(d.iterdir()):
                    d.rmdir()
    return plan
