"""Training data: a store reference or a pulled manifest -> verified bytes -> TRL rows in memory.

``--data`` is either a store reference (``demo-sft-train``, ``demo-rl@v2``) or the path of a
pulled ``manifest.json`` (a cluster node trains without the catalog: ``thinkforge pull``
copies a version to ``<dir>/datasets/<name>/<version>/``, itself a store).  Every shard's
sha256 is checked before anything else happens (a tampered shard raises
``IntegrityError`` before any model is loaded); the rows are read with DuckDB in the
version's order (curriculum order for RL pools) and turned into TRL's layouts by the same
row functions as ``thinkforge export`` (``thinkforge.curation.export_formats``), in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.errors import ConfigError, ForgeError, InputDataError, NotFoundError

Row = dict[str, Any]


@dataclass
class TrainingData:
    """A verified version and where its bytes are."""

    manifest: Manifest
    store: DatasetStore              # the store holding the shards (a pulled copy or the main one)
    manifest_path: Path | None = None  # set when --data named a manifest file

    @property
    def ref(self) -> str:
        return self.manifest.ref

    def run_data(self, role: str = "train"):
        from thinkforge.manifests.training_runs import RunData

        m = self.manifest
        return RunData(ref=m.ref, name=m.name, version=m.version, kind=m.kind,
                       fingerprint=m.fingerprint, rows=m.rows, role=role,
                       manifest_path=str(self.manifest_path) if self.manifest_path else None)


def open_data(store: DatasetStore, data: str, kinds: tuple[str, ...]) -> TrainingData:
    """Resolve ``data`` (store reference or manifest path), check its kind, verify every shard."""
    path = Path(data).expanduser()
    if data.endswith(".json") or path.is_dir() and (path / "manifest.json").is_file():
        manifest_file = path / "manifest.json" if path.is_dir() else path
        if not manifest_file.is_file():
            raise NotFoundError(f"manifest file {manifest_file} does not exist",
                                hint="pass a store reference (name@vN) or the manifest.json of a "
                                     "version pulled with `thinkforge pull REF --to DIR`")
        manifest = Manifest.load(manifest_file)
        version_dir = manifest_file.resolve().parent
        if version_dir.name != manifest.version or version_dir.parent.name != manifest.name \
                or version_dir.parent.parent.name != "datasets":
            raise InputDataError(
                f"{manifest_file} is not inside a store layout "
                f"(<dir>/datasets/{manifest.name}/{manifest.version}/manifest.json)",
                hint="copy versions with `thinkforge pull REF --to DIR`, which keeps the layout")
        found = TrainingData(manifest, DatasetStore(version_dir.parent.parent.parent),
                             manifest_file.resolve())
    else:
        found = TrainingData(store.resolve(data), store)
    if found.manifest.kind not in kinds:
        raise InputDataError(f"{found.ref} is a {found.manifest.kind} version; this trainer "
                             f"takes {' or '.join(kinds)} versions",
                             hint="see `thinkforge catalog` for the kind of each version")
    if found.manifest.rows == 0:
        raise InputDataError(f"{found.ref} has no rows: nothing to train on")
    verify_version(found.store, found.manifest)
    return found


def verify_version(store: DatasetStore, manifest: Manifest) -> None:
    """sha256 of every shard; the shared cached verifier when the store offers one."""
    for name in ("verify_cached", "verify_with_cache"):
        cached = getattr(store, name, None)
        if callable(cached):
            cached(manifest)
            return
    store.verify(manifest)


def read_rows(data: TrainingData, *, curriculum_order: bool = False,
              where: Callable[[Row], bool] | None = None) -> list[Row]:
    """The version's rows as Python dicts, in curriculum order for pools that have one."""
    from thinkforge.curation.export import read_batches

    rows: list[Row] = []
    for batch in read_batches(data.store, data.manifest, curriculum_order):
        rows.extend(r for r in batch.to_pylist() if where is None or where(r))
    return rows


def export_context(data: TrainingData, reasoning: str | None):
    from thinkforge.curation.export_formats import ExportContext

    m = data.manifest
    return ExportContext(ref=m.ref, fingerprint=m.fingerprint, kind=m.kind, split="train",
                         reasoning=reasoning, data_source=None, policy_model=None)


def to_dataset(rows: list[Row]):
    """A ``datasets.Dataset`` from converted rows (TRL reads it as it is)."""
    from thinkforge.manifests.errors import require

    datasets = require("datasets", "train")
    if not rows:
        raise InputDataError("no rows left to train on after the mode / kind selection",
                             hint="check --mode and the version's reasoning counts")
    return datasets.Dataset.from_list(rows)


def sft_rows(data: TrainingData, mode: str) -> list[Row]:
    """Prompt/completion rows: prompt = [system "detailed thinking on|off", *input],
    completion = [assistant output]; ON and OFF mixed as the version holds them."""
    from thinkforge.curation.export_formats import trl_prompt_completion

    if mode not in ("on", "off", "both"):
        raise ConfigError(f"mode {mode!r}: use on, off or both")
    ctx = export_context(data, None)
    keep = None if mode == "both" else (lambda r: r["reasoning"] == mode)
    return [trl_prompt_completion(r, i, ctx) for i, r in enumerate(read_rows(data, where=keep))]


def preference_rows(data: TrainingData, reasoning: str | None) -> list[Row]:
    """Conversational preference rows (prompt, chosen, rejected); the reasoning-mode system
    turn is the one the pairs were sampled with (recorded by `generate preferences`)."""
    from thinkforge.curation.export_formats import trl_dpo

    ctx = export_context(data, reasoning)
    return [trl_dpo(r, i, ctx) for i, r in enumerate(read_rows(data))]


def preference_mode(data: TrainingData, requested: str) -> str | None:
    """auto: the mode the pairs were generated in (manifest provenance), else none."""
    if requested == "auto":
        modes = data.manifest.provenance.get("modes") or []
        return modes[0] if len(modes) == 1 else None
    return None if requested == "none" else requested


def rollout_prompt_settings(store: DatasetStore, manifest: Manifest, depth: int = 12
                            ) -> dict[str, Any]:
    """How the rollouts behind a pool's pass rates prompted the model: modes, reasoning
    format and the step's per-mode instructions (None: the defaults), found through
    lineage (so GRPO prompts the way the pass rates were measured)."""
    frontier, seen = [manifest], set()
    for _ in range(depth):
        parents = []
        for m in frontier:
            if m.kind == "rollouts":
                config = m.step.config or {}
                return {"modes": m.provenance.get("modes") or list(config.get("modes") or ["on"]),
                        "reasoning_format": config.get("reasoning_format", "prompted"),
                        "instructions": config.get("instructions"),
                        "rollouts": m.ref}
            for p in m.parents:
                if p.ref not in seen:
                    seen.add(p.ref)
                    try:
                        parents.append(store.resolve(p.ref))
                    except ForgeError:  # not in this store (a pulled copy): lineage ends here
                        pass
        if not parents:
            break
        frontier = parents
    return {}
