"""The identity of a base model: one sha256 over its weights, config and tokenizer files.

A run is keyed by the weights it starts from, not by the string given to ``--model``:
retraining SFT into ``out/sft`` and then asking for GRPO on ``--model out/sft`` must not
reuse the GRPO run that started from the old SFT weights (docs/training.md, "Runs and
reuse").  ``model_key`` hashes every file of the model folder that decides what is
loaded (weights, ``*.json`` configs, tokenizer files) and combines them into one digest.

Hashing a 16 GB checkpoint takes a minute, so each file's sha256 is cached in
``$THINKFORGE_CACHE/file-sha256.json`` under its absolute path together with its size,
``mtime_ns``, inode and ``ctime_ns``.  A file rewritten in place or replaced by another
file (new inode) changes at least one of them, and ``ctime`` cannot be set back by hand
(``touch -d`` / ``os.utime`` set only mtime), so a stale digest is never returned.  The
cache keeps one entry per path; concurrent ranks take a lock so a model is hashed once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from thinkforge.manifests.errors import ForgeError
from thinkforge.manifests.manifest import sha256_file
from thinkforge.manifests.training_runs import WEIGHT_SUFFIXES

MODEL_SUFFIXES = (*WEIGHT_SUFFIXES, ".json", ".model", ".txt", ".jinja", ".tiktoken")
# written by the Trainer beside the model: they describe a run, not the weights it loads
NOT_MODEL = {"training_args.bin", "trainer_state.json", "all_results.json", "train_results.json",
             "eval_results.json"}
CACHE_NAME = "file-sha256.json"


@dataclass(frozen=True)
class ModelKey:
    sha256: str       # over the sorted (relative path, sha256) list of the model's files
    path: str         # the absolute folder that was hashed
    files: int
    bytes: int


def model_files(folder: Path) -> list[Path]:
    """The files of a model folder that decide what ``from_pretrained`` loads."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in MODEL_SUFFIXES
                  and p.name not in NOT_MODEL
                  and not any(part.startswith((".", "checkpoint-"))
                              for part in p.relative_to(folder).parts))


def resolve_model_path(model: str) -> str:
    """A local folder for ``model`` (the embedded SmolLM2 is converted once, never downloaded)."""
    from thinkforge.generators.backends.model_cache import resolve_model

    try:
        return str(resolve_model(model))
    except ForgeError:  # a hub id on a machine that has it cached: transformers resolves it
        return model


def model_folder(model: str) -> Path | None:
    """The local folder ``model`` loads from: a folder, the embedded model's converted folder,
    or a hub id already in the Hugging Face cache; None when there is none here."""
    path = Path(resolve_model_path(model)).expanduser()
    if (path / "config.json").is_file():
        return path.resolve()
    try:  # a hub id: its snapshot in the local cache (nothing is downloaded)
        from huggingface_hub import snapshot_download

        found = Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001 - not installed, not a repo id, not cached: no folder
        return None
    return found.resolve() if (found / "config.json").is_file() else None


def model_key(model: str) -> ModelKey | None:
    """The content key of ``model`` (None when it is not on this machine: a hub id not yet
    downloaded, or the folder an earlier recipe step has still to write)."""
    folder = model_folder(model)
    if folder is None:
        return None
    files = model_files(folder)
    if not files:
        return None
    digests = cached_sha256(files)
    lines = "\n".join(f"{p.relative_to(folder).as_posix()} {digests[p]}" for p in files)
    return ModelKey(sha256=hashlib.sha256(lines.encode()).hexdigest(), path=str(folder),
                    files=len(files), bytes=sum(p.stat().st_size for p in files))


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino,
            "ctime_ns": st.st_ctime_ns}


def cache_path() -> Path:
    from thinkforge.generators.backends.model_cache import cache_dir

    return cache_dir() / CACHE_NAME


def cached_sha256(paths: list[Path]) -> dict[Path, str]:
    """sha256 of each file, from the cache when path, size, mtime_ns, inode and ctime_ns
    all match; the others are hashed and the cache rewritten (atomically, under a lock)."""
    cache_file = cache_path()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with _locked(cache_file.with_suffix(".lock")):
        cache = _read(cache_file)
        out, changed = {}, False
        for path in paths:
            key = str(path.resolve())
            stamp = _stamp(path)
            entry = cache.get(key)
            if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()) \
                    and entry.get("sha256"):
                out[path] = entry["sha256"]
                continue
            digest = sha256_file(path)
            if _stamp(path) != stamp:  # written while we read it: do not cache a torn read
                out[path] = digest
                continue
            cache[key] = {**stamp, "sha256": digest}
            out[path], changed = digest, True
        if changed:
            tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, sort_keys=True), encoding="utf-8")
            os.replace(tmp, cache_file)
    return out


def _read(cache_file: Path) -> dict:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or damaged: a cache, so start again
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _locked(lock_file: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: hashing twice is only slower
        yield
        return
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
