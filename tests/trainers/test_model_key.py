"""Runs are keyed by the weights they start from (base_model_sha256), not by the --model string."""

from __future__ import annotations

import json
import os
import shutil

from thinkforge.manifests.training_runs import TrainingRuns


def test_file_hash_cache_is_not_fooled(tmp_path, monkeypatch):
    """Same path, size and mtime_ns but other bytes (replaced: new inode; or rewritten in
    place: new ctime) gives the new digest; an untouched file is read from the cache."""
    from thinkforge.trainers import model_key as mk

    monkeypatch.setenv("THINKFORGE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"A" * 64)
    first = mk.cached_sha256([path])[path]
    stamp = path.stat()

    replacement = tmp_path / "new.tmp"
    replacement.write_bytes(b"B" * 64)
    os.utime(replacement, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    os.replace(replacement, path)                     # what save_pretrained-style writers do
    assert path.stat().st_size == stamp.st_size and path.stat().st_mtime_ns == stamp.st_mtime_ns
    second = mk.cached_sha256([path])[path]
    assert second != first

    stamp = path.stat()
    with open(path, "r+b") as f:                      # in place, mtime set back by hand
        f.write(b"C" * 64)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    third = mk.cached_sha256([path])[path]
    assert third not in (first, second)

    cache = json.loads((tmp_path / "cache" / mk.CACHE_NAME).read_text())
    cache[str(path.resolve())]["sha256"] = "f" * 64   # a cache hit is served from the cache
    (tmp_path / "cache" / mk.CACHE_NAME).write_text(json.dumps(cache))
    assert mk.cached_sha256([path])[path] == "f" * 64


def test_model_key_covers_weights_and_config_not_trainer_files(tiny_model, tmp_path, monkeypatch):
    from thinkforge.trainers.model_key import model_key

    monkeypatch.setenv("THINKFORGE_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    key = model_key(str(base))
    assert key.path == str(base.resolve()) and key.files >= 3
    assert model_key(str(tiny_model)).sha256 == key.sha256      # same content, other folder
    (base / "training_args.bin").write_bytes(b"run facts")       # not part of the model
    assert model_key(str(base)).sha256 == key.sha256
    config = json.loads((base / "config.json").read_text())
    config["rope_theta"] = 1234.0
    (base / "config.json").write_text(json.dumps(config))
    assert model_key(str(base)).sha256 != key.sha256
    assert model_key(str(tmp_path / "not-trained-yet")) is None


def _perturb(folder) -> None:
    """Retrain stand-in: other weights saved into the same folder."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder))
    with torch.no_grad():
        model.get_input_embeddings().weight.add_(0.01)
    model.save_pretrained(str(folder))


def test_new_weights_at_the_same_path_invalidate_reuse(store, sft_version, tiny_model, tmp_path,
                                                       cli_run, monkeypatch):
    from thinkforge.trainers.model_key import model_key

    monkeypatch.setenv("THINKFORGE_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "sft"                          # the folder an SFT step trains into
    shutil.copytree(tiny_model, base)
    args = ["train", "sft", "--data", sft_version.ref, "--model", str(base),
            "--output", str(tmp_path / "out"), "--max-steps", "1", "--max-length", "64",
            "--no-gradient-checkpointing", "--reuse"]
    first = cli_run(*args, "--json")
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)
    assert record["base_model_sha256"] == model_key(str(base)).sha256
    assert record["base_model_path"] == str(base.resolve())
    assert record["config"]["base_model_sha256"] == record["base_model_sha256"]
    assert json.loads(cli_run(*args, "--dry-run").stdout)["reuses"] == record["run_id"]
    assert f"base model sha256: {record['base_model_sha256']}" in cli_run("show", record["run_id"]).output

    _perturb(base)                                   # SFT retrained into the same folder
    assert json.loads(cli_run(*args, "--dry-run").stdout)["reuses"] is None
    second = cli_run(*args, "--json")
    assert second.exit_code == 0, second.output
    retrained = json.loads(second.stdout)
    assert retrained["run_id"] != record["run_id"]
    assert retrained["base_model_sha256"] == model_key(str(base)).sha256 != record["base_model_sha256"]

    moved = tmp_path / "sft-copy"                    # the same weights under another path
    shutil.copytree(base, moved)
    elsewhere = [str(moved) if a == str(base) else a for a in args]
    assert json.loads(cli_run(*elsewhere, "--json").stdout)["run_id"] == retrained["run_id"]
    assert len(list(TrainingRuns(store))) == 2
    rows = cli_run("sql", "SELECT base_model_sha256 FROM runs ORDER BY created_at", "--format", "csv")
    assert retrained["base_model_sha256"] in rows.output
