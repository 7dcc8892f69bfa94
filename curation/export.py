"""Export a version for a trainer, or pull it as it is; bytes leave the store only verified.

``export_version`` checks the sha256 of every shard first (``DatasetStore.verify``), reads
the rows with DuckDB (curriculum order kept for RL formats: ``curriculum_batch``, then
``curriculum_position``), converts them with the format's row function
(``thinkforge.curation.export_formats``) and writes ``<out>/<split>.parquet`` (or ``.jsonl``, or a
``datasets.save_to_disk`` folder).  Everything is written into a temporary sibling
directory first and renamed into place, so ``<out>`` is either complete or absent.
``<out>/.thinkforge-export.json`` records the source version (ref + fingerprint), the
options and each file's sha256; its leading dot keeps ``datasets.load_dataset(out)`` from
reading it as data.

``pull_version`` copies a version (manifest, data and rejected shards) into
``<to>/datasets/<name>/<version>/``: the destination is itself a store, so
``thinkforge --store <to> verify <ref>`` works there.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import connect
from thinkforge.manifests.errors import ConfigError, ConflictError, InputDataError, IntegrityError, require
from thinkforge.manifests.manifest import created_by, sha256_file, utc_now
from thinkforge.manifests.selection import row_relation

from .export_formats import OPENRLHF_ARGS, ExportContext, ExportFormat, ExportJob, formats, jsonl_line

EXPORT_MANIFEST = ".thinkforge-export.json"
BATCH_ROWS = 2048
PROMPT_KINDS = ("rl_pool", "prompts")


def export_version(store: DatasetStore, ref: str | Manifest, fmt: str, out: str | Path, *,
                   split: str | None = None, reasoning: str = "auto",
                   data_source: str | None = None, overwrite: bool = False,
                   stages: int | None = None, release: str | None = None,
                   used_in_training: list[str] | None = None,
                   license: str | None = None) -> dict[str, Any]:
    """Write version ``ref`` in format ``fmt`` to directory ``out``; return the export manifest.

    ``split`` names the file (default: the part a split step recorded, else ``train``).
    ``reasoning`` picks the system turn added to prompt-only rows (GRPO, verl, OpenRLHF
    prompts, DPO): ``on`` / ``off`` (``detailed thinking on|off``), ``none`` for no system
    turn, ``auto`` = ``on`` for RL prompts and none for preference pairs.  SFT rows always
    keep the system prompt the teacher saw.  ``stages`` (openrlhf, a pool with a
    curriculum): also write ``stages/stage-NN.jsonl``, the curriculum batches cut into that
    many consecutive stages, since OpenRLHF's PPO shuffles the prompts of one run.
    ``release``, ``used_in_training``, ``license`` (nemotron): the ``version`` tag, the
    models trained on it, the licence of rows that have none.
    """
    manifest = store.resolve(ref) if isinstance(ref, str) else ref
    spec = _format(fmt, manifest)
    out = Path(out)
    _check_destination(out, overwrite)
    store.verify(manifest)  # every shard's sha256, before any byte leaves the store
    if manifest.rows == 0:
        raise InputDataError(f"{manifest.ref} has no rows: nothing to export",
                             hint="export a version with rows (see `thinkforge catalog`)")
    ctx = ExportContext(
        ref=manifest.ref, fingerprint=manifest.fingerprint, kind=manifest.kind,
        split=split or manifest.step.config.get("part") or "train",
        reasoning=_reasoning(reasoning, manifest.kind),
        data_source=data_source, policy_model=policy_model(store, manifest),
        prompt_template=prompt_template_of(store, manifest), release=release,
        used_in_training=tuple(used_in_training or ()), license=license)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        batches = read_batches(store, manifest, spec.ordered_by_curriculum)
        files, rows = _write(spec, ctx, batches, tmp)
        record = {
            "format": spec.name, "created_at": utc_now(), "created_by": created_by(),
            "source": {"ref": manifest.ref, "name": manifest.name, "version": manifest.version,
                       "kind": manifest.kind, "fingerprint": manifest.fingerprint,
                       "rows": manifest.rows},
            "options": {"split": ctx.split, "reasoning": ctx.reasoning,
                        "data_source": data_source},
            "rows": rows, "files": files,
            "curriculum_order": spec.ordered_by_curriculum and _has_curriculum(manifest),
        }
        if manifest.kind in PROMPT_KINDS and spec.records_prompt_template:
            record["prompt_template"] = ctx.prompt_template
            record["prompt_matches_rollouts"] = bool(
                ctx.prompt_template and (ctx.reasoning in ctx.prompt_template["modes"]
                                         or ctx.reasoning is None))
        job = ExportJob(
            kind=manifest.kind, out=str(out), ctx=ctx, curriculum=record["curriculum_order"],
            stages=stages,
            write_stages=lambda n: _write_stages(spec, ctx, store, manifest, tmp, out, n),
            licence_warnings=lambda: _licence_warnings(store, manifest, license))
        for key, value in (spec.describe(job) if spec.describe else {}).items():
            if isinstance(value, dict) and isinstance(record.get(key), dict):
                record[key].update(value)  # e.g. nemotron's own options
            else:
                record[key] = value
        record["trainer_notes"] = trainer_notes(spec, job, record)
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def plan_export(store: DatasetStore, ref: str, fmt: str, out: str | Path, *,
                split: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """What ``export_version`` would write, after the same checks (kind, destination,
    sha256 of every shard); writes nothing."""
    manifest = store.resolve(ref)
    spec = _format(fmt, manifest)
    _check_destination(Path(out), overwrite)
    store.verify(manifest)
    split = split or manifest.step.config.get("part") or "train"
    name = "(a datasets.save_to_disk folder)" if spec.file_type == "hf" else \
        f"{split}.{spec.file_type}"
    return {"format": fmt, "source": manifest.ref, "fingerprint": manifest.fingerprint,
            "rows": manifest.rows, "out": str(out), "file": name,
            "curriculum_order": spec.ordered_by_curriculum and _has_curriculum(manifest)}


def _format(fmt: str, manifest: Manifest) -> ExportFormat:
    table = formats()
    if fmt not in table:
        import difflib

        near = difflib.get_close_matches(fmt, table, n=1)
        raise ConfigError(f"unknown export format {fmt!r}" + (f"; did you mean {near[0]!r}?" if near else ""),
                          hint=f"formats: {', '.join(table)}")
    spec = table[fmt]
    if manifest.kind not in spec.kinds:
        takes = [f.name for f in table.values() if manifest.kind in f.kinds]
        raise ConfigError(f"format {fmt} exports {'/'.join(spec.kinds)} versions; "
                          f"{manifest.ref} is a {manifest.kind} version",
                          hint=f"formats for {manifest.kind}: {', '.join(takes)}")
    return spec


def _reasoning(choice: str, kind: str) -> str | None:
    if choice not in ("auto", "on", "off", "none"):
        raise ConfigError(f"reasoning {choice!r}: use auto, on, off or none")
    if choice == "auto":
        # preferences: per row, the chosen answer's mode (export_formats.dpo_system_turn)
        return "on" if kind in PROMPT_KINDS else "auto" if kind == "preferences" else None
    return None if choice == "none" else choice


def _check_destination(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise ConflictError(f"export destination {out} already exists and is not empty",
                            hint="choose another --out, or pass --overwrite to replace it")


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first, then deleted."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _has_curriculum(manifest: Manifest) -> bool:
    return bool(manifest.stats.get("curriculum_batches")) and \
        manifest.stats.get("curriculum_batches") != 0


def read_batches(store: DatasetStore, manifest: Manifest, curriculum_order: bool
                 ) -> Iterator[pa.RecordBatch]:
    """The version's rows as Arrow batches, in curriculum order when it has one."""
    order = ""
    if curriculum_order and _has_curriculum(manifest):
        order = " ORDER BY curriculum_batch NULLS LAST, curriculum_position NULLS LAST, id"
    con = connect()
    try:
        reader = con.sql(f"SELECT * FROM {row_relation(store, manifest)}{order}"
                         ).to_arrow_reader(BATCH_ROWS)
        yield from reader
    finally:
        con.close()


def _rows(spec: ExportFormat, ctx: ExportContext, batches: Iterator[pa.RecordBatch]
          ) -> Iterator[list[dict[str, Any]]]:
    index = 0
    for batch in batches:
        rows = []
        for row in batch.to_pylist():
            rows.append(spec.convert(row, index, ctx))
            index += 1
        yield rows


def _write(spec: ExportFormat, ctx: ExportContext, batches: Iterator[pa.RecordBatch],
           tmp: Path) -> tuple[list[dict[str, Any]], int]:
    """Write the export's files into ``tmp``; return their entries and the row count."""
    if spec.file_type == "hf":
        datasets = require("datasets", "hf")
        table = pa.Table.from_batches(list(batches))
        datasets.Dataset(table, split=datasets.Split(ctx.split)).save_to_disk(str(tmp))
        return [{"path": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)}
                for p in sorted(tmp.iterdir()) if p.is_file()], table.num_rows
    path = tmp / f"{ctx.split}.{spec.file_type}"
    rows_written = 0
    if spec.file_type == "jsonl":
        with open(path, "w", encoding="utf-8") as handle:
            for rows in _rows(spec, ctx, batches):
                handle.writelines(jsonl_line(r) for r in rows)
                rows_written += len(rows)
    else:
        writer = None
        try:
            for rows in _rows(spec, ctx, batches):
                table = pa.Table.from_pylist(rows, schema=spec.schema or
                                             (writer.schema if writer else None))
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                writer.write_table(table)
                rows_written += table.num_rows
        finally:
            if writer is not None:
                writer.close()
    return [{"path": path.name, "rows": rows_written, "bytes": path.stat().st_size,
             "sha256": sha256_file(path)}], rows_written


def _licence_warnings(store: DatasetStore, manifest: Manifest, license: str | None) -> list[str]:
    if license:
        return []
    con = connect()
    try:
        missing = con.execute(f"SELECT count(*) FROM {row_relation(store, manifest, ordered=False)} "
                              "WHERE license IS NULL OR trim(license) = ''").fetchone()[0]
    finally:
        con.close()
    return [f"{missing} of {manifest.rows} rows have no licence: exported as license "
            "'unknown'; pass --license to state it"] if missing else []


def trainer_notes(spec: ExportFormat, job: ExportJob, record: dict[str, Any]) -> list[str]:
    """What a user must pass or know to train on this export as it was meant (printed)."""
    notes = [f"warning: {w}" for w in record.get("warnings", [])]
    return notes + (spec.notes(job, record) if spec.notes else [])


def _write_stages(spec: ExportFormat, ctx: ExportContext, store: DatasetStore,
                  manifest: Manifest, tmp: Path, out: Path, stages: int) -> list[dict[str, Any]]:
    """``stages/stage-NN.jsonl``: consecutive curriculum batches, ``stages`` files."""
    if not _has_curriculum(manifest):
        raise ConfigError(f"--stages needs a pool with a curriculum; {manifest.ref} has none",
                          hint="run `thinkforge filter curriculum` first")
    batches = sorted({int(r["curriculum_batch"]) for b in read_batches(store, manifest, True)
                      for r in b.select(["curriculum_batch"]).to_pylist()
                      if r["curriculum_batch"] is not None})
    per_stage = max(1, -(-len(batches) // stages))
    (tmp / "stages").mkdir()
    written, index = [], 0
    handles: dict[int, Any] = {}
    try:
        for batch in read_batches(store, manifest, True):
            for row in batch.to_pylist():
                stage = batches.index(row["curriculum_batch"]) // per_stage \
                    if row["curriculum_batch"] is not None else len(batches) // per_stage
                if stage not in handles:
                    handles[stage] = open(tmp / "stages" / f"stage-{stage:02d}.jsonl", "w",
                                          encoding="utf-8")
                handles[stage].write(jsonl_line(spec.convert(row, index, ctx)))
                index += 1
    finally:
        for handle in handles.values():
            handle.close()
    for stage in sorted(handles):
        path = tmp / "stages" / f"stage-{stage:02d}.jsonl"
        written.append({"path": f"stages/{path.name}", "sha256": sha256_file(path),
                        "curriculum_batches": batches[stage * per_stage:(stage + 1) * per_stage],
                        "openrlhf_args": f"--data.prompt_dataset {out}/stages/{path.name} "
                                         f"{OPENRLHF_ARGS[manifest.kind]}"})
    return written


def export_facts(store: DatasetStore, manifest: Manifest) -> dict[str, Any]:
    """``provenance.export`` of the version (carried down the lineage by the writer)."""
    return manifest.provenance.get("export") or {}


def prompt_template_of(store: DatasetStore, manifest: Manifest) -> dict | None:
    """The template the pool's rollouts wrapped each prompt in (None for an older pool)."""
    return export_facts(store, manifest).get("prompt_template")


def policy_model(store: DatasetStore, manifest: Manifest, depth: int = 12) -> str | None:
    """The model that wrote the rollouts behind a pool's pass rates: from the manifest's
    ``provenance.export``, else found through lineage (versions built before it existed)."""
    if export_facts(store, manifest).get("policy_model"):
        return export_facts(store, manifest)["policy_model"]
    frontier, seen = [manifest], set()
    for _ in range(depth):
        parents = []
        for m in frontier:
            if m.kind == "rollouts":
                named = m.provenance.get("policy_model") or m.provenance.get("model")
                generators = list(m.stats.get("by_generator", {}))
                return named or (generators[0] if len(generators) == 1 else
                                 ", ".join(generators) or None)
            for p in m.parents:
                if p.ref not in seen:
                    seen.add(p.ref)
                    try:
                        parents.append(store.resolve(p.ref))
                    except Exception:  # a parent deleted from this store: lineage ends there
                        continue
        if not parents:
            return None
        frontier = parents
    return None


def pull_version(store: DatasetStore, ref: str, to: str | Path,
                 trusted_keys: list[bytes] | None = None) -> Path:
    """Verify ``ref`` and copy it to ``<to>/datasets/<name>/<version>`` (a store of its own);
    with ``trusted_keys``, only a version signed by one of them (manifests/signing.py)."""
    manifest = store.resolve(ref)
    store.verify(manifest, trusted_keys=trusted_keys)
    target_store = DatasetStore(to)
    dest = target_store.version_dir(manifest)
    if (dest / "manifest.json").is_file():
        existing = Manifest.load(dest / "manifest.json")
        if existing.fingerprint != manifest.fingerprint:
            raise ConflictError(f"{dest} holds a different {manifest.ref} "
                                f"(fingerprint {existing.fingerprint[:12]})",
                                hint="pull into another directory")
        target_store.verify(existing, trusted_keys=trusted_keys)
        return dest
    if manifest.selection is not None:
        _pull_base_files(store, manifest, target_store)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(store.version_dir(manifest), tmp)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target_store.record_copy(manifest)  # the copy's own publish log (verify checks against it)
    target_store.verify(manifest, trusted_keys=trusted_keys)  # the copies, byte for byte
    return dest


def _pull_base_files(store: DatasetStore, manifest: Manifest, target: DatasetStore) -> None:
    """A selection's rows live in its base's shards: copy the ones it uses (and the base's
    row digests) to the same place under ``target``, each verified before it is renamed
    into place.  The base's manifest is not copied: the pulled store lists the selection
    only, and the selection's manifest names every base file with its sha256."""
    for what, entry, path in store.version_files(manifest, rejected=False):
        if what == "selection":
            continue
        dest = target.root / entry.path
        if dest.is_file() and dest.stat().st_size == entry.bytes and sha256_file(dest) == entry.sha256:
            continue  # pulled before (another selection over the same base)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            shutil.copyfile(path, tmp)
            if sha256_file(tmp) != entry.sha256:
                raise IntegrityError(f"{manifest.ref}: {what} {entry.path} changed while it was copied",
                                     hint="pull again")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
