"""A decontamination step that checks data against its own source (issue 9 item 6).

Decontaminating prompts against the very set they were drawn from drops every prompt at
scale (and, worse, passes silently on a small slice).  Before and while a recipe builds,
each ``decontam`` step's benchmarks are compared with where the step's own data came from:

* by **source file**: the recipe inputs the data descends from (through earlier steps'
  inputs) and the benchmark's, compared by resolved path and by the file's sha256;
* by **fingerprint**: once versions exist, the data's lineage (every ancestor's
  fingerprint) against each benchmark version's fingerprint and lineage.

A match is a warning naming the step, the benchmark and the shared file or version; the
build goes on (a user may mean it), and ``build`` prints it after its table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thinkforge.manifests import DatasetStore, Manifest


def _input_roots(recipe, steps, ref: str) -> set[str]:
    """The recipe inputs (keys) that ``ref`` (an input or a step output) descends from."""
    if ref in recipe.inputs:
        return {ref}
    for step in steps:
        if ref in step.type.output_names(step.spec.name):
            roots: set[str] = set()
            for value in step.refs.values():
                for parent in value if isinstance(value, list) else [value]:
                    roots |= _input_roots(recipe, steps, parent)
            return roots
    return set()


def _file_identity(spec) -> tuple[str | None, str | None]:
    if spec.path is None:
        return None, None
    from thinkforge.manifests.manifest import sha256_file

    path = Path(spec.path)
    return str(path.resolve()), sha256_file(path) if path.is_file() else None


def recipe_warnings(recipe, steps, step) -> list[str]:
    """Static check of one decontam step: a benchmark and the data share a source file."""
    if step.spec.type != "decontam":
        return []
    data_roots = _input_roots(recipe, steps, step.refs.get("data", ""))
    warnings = []
    for bench in step.refs.get("against", []):
        for bench_root in sorted(_input_roots(recipe, steps, bench)):
            b_path, b_sha = _file_identity(recipe.inputs[bench_root])
            for root in sorted(data_roots):
                path, sha = _file_identity(recipe.inputs[root])
                if root == bench_root or (path and (path == b_path or (sha and sha == b_sha))):
                    warnings.append(
                        f"{step.label}: benchmark {bench!r} comes from the same source as the "
                        f"data's input {root!r} ({path or recipe.inputs[root].version}): "
                        "decontaminating a set against itself drops every row at scale; take "
                        "prompts from a training split and benchmarks from the test sets")
    return warnings


def _lineage(store: DatasetStore, manifest: Manifest) -> dict[str, str]:
    """fingerprint -> ref of a version and every ancestor it names."""
    seen: dict[str, str] = {}
    todo = [manifest]
    while todo:
        m = todo.pop()
        if m.fingerprint in seen:
            continue
        seen[m.fingerprint] = m.ref
        for parent in m.parents:
            try:
                todo.append(store.resolve(f"{parent.name}@{parent.version}"))
            except Exception:  # a parent pulled away or gc'd: its fingerprint still counts
                seen.setdefault(parent.fingerprint, f"{parent.name}@{parent.version}")
    return seen


def version_warnings(store: DatasetStore, step, inputs: dict[str, Any]) -> list[str]:
    """A benchmark version that is the data or one of its ancestors (same fingerprint)."""
    if step.spec.type != "decontam" or not inputs or inputs.get("data") is None:
        return []
    ancestors = _lineage(store, inputs["data"])
    warnings = []
    for bench in inputs.get("against") or []:
        if bench is None:
            continue
        shared = sorted(set(ancestors) & set(_lineage(store, bench)))
        if shared:
            warnings.append(
                f"{step.label}: benchmark {bench.ref} shares a version with the data's lineage "
                f"({ancestors[shared[0]]}, fingerprint {shared[0][:12]}): decontaminating a set "
                "against itself drops every row at scale")
    return warnings
