"""SFT on a tiny model: real steps on CPU, the run record, reload, integrity before loading."""

from __future__ import annotations

import json
import math

import pytest
from thinkforge.manifests.training_runs import TrainingRuns

from .conftest import same_logits, weights_changed


def test_sft_trains_saves_and_records(store, sft_version, tiny_model, tmp_path):
    from thinkforge.trainers.base import run_trainer
    from thinkforge.trainers.registry import config_model, get_method

    session: dict = {}
    out = tmp_path / "sft-out"
    config = config_model("sft")(max_steps=2, learning_rate=5e-3, per_device_train_batch_size=2)
    record = run_trainer(get_method("sft"), store, sft_version.ref, str(tiny_model), out, config,
                         session=session)
    assert record.world_size == 1 and record.final_metrics["global_step"] == 2
    losses = [m["loss"] for m in record.metrics if "loss" in m]
    assert losses and all(math.isfinite(v) for v in losses)
    assert weights_changed(tiny_model, out)
    assert same_logits(session["trainer"].model, out)
    assert record.data[0].fingerprint == sft_version.fingerprint
    assert record.libraries["trl"] and record.libraries["torch"]
    assert TrainingRuns(store).get(record.run_id).weights_sha256 == record.weights_sha256
    # the prompt/completion layout with the system turn kept
    dataset = session["trainer"].train_dataset
    assert "completion_mask" in dataset.column_names or "completion" in dataset.column_names
    TrainingRuns(store).verify_weights(record)


def test_sft_rows_keep_the_system_prompt_and_select_modes(store, sft_version):
    from thinkforge.trainers.data import open_data, sft_rows

    data = open_data(store, sft_version.ref, ("sft",))
    both = sft_rows(data, "both")
    assert len(both) == 8
    assert both[0]["prompt"][0] == {"role": "system", "content": "detailed thinking on"}
    assert both[1]["prompt"][0] == {"role": "system", "content": "detailed thinking off"}
    assert both[0]["completion"][0]["role"] == "assistant"
    assert {r["prompt"][0]["content"] for r in sft_rows(data, "off")} == {"detailed thinking off"}


def test_cli_sft_mode_packing_and_pulled_manifest(store, sft_version, tiny_model, tmp_path, cli_run):
    pulled = tmp_path / "node-local"
    assert cli_run("pull", sft_version.ref, "--to", str(pulled)).exit_code == 0
    manifest = pulled / "datasets" / "toy-sft" / "v1" / "manifest.json"
    out = tmp_path / "cli-out"
    result = cli_run("train", "sft", "--data", str(manifest), "--model", str(tiny_model),
                     "--output", str(out), "--max-steps", "1", "--mode", "on", "--packing", "bfd",
                     "--max-length", "64", "--trl", "warmup_steps=0", "--json")
    # stdout is data: the run record and nothing else (TRL's log lines go to stderr)
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().startswith("{"), result.stdout[:300]
    record = json.loads(result.stdout)
    assert record["data"][0]["manifest_path"] == str(manifest.resolve())
    assert record["config"]["mode"] == "on" and record["config"]["packing"] == "bfd"
    assert record["extra"]["trl_config"]["packing"] is True
    assert record["extra"]["trl_config"]["packing_strategy"] == "bfd"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(str(out))  # loads back


def test_dry_run_verifies_and_prints_the_config(store, sft_version, tmp_path, cli_run):
    result = cli_run("train", "sft", "--data", sft_version.ref, "--model", "m", "--output",
                     str(tmp_path / "o"), "--dry-run", "--mode", "off")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["verified"] and plan["fingerprint"] == sft_version.fingerprint
    assert plan["config"]["mode"] == "off" and plan["config"]["method"] == "sft"
    assert not (tmp_path / "o").exists()


def test_tampered_shard_stops_before_any_model_loads(store, sft_version, tmp_path, cli_run,
                                                     monkeypatch):
    import thinkforge.trainers.base as trainer_base

    def no_model(_):
        raise AssertionError("a model was loaded before the data was verified")

    monkeypatch.setattr(trainer_base, "resolve_model_path", no_model)
    shard = store.shard_paths(sft_version)[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = cli_run("train", "sft", "--data", sft_version.ref, "--model", "x", "--output",
                     str(tmp_path / "o"), "--max-steps", "1")
    assert result.exit_code == 4, result.output
    assert "sha256" in result.output


def test_bad_options_are_clear(store, sft_version, tmp_path, cli_run):
    result = cli_run("train", "sft", "--data", sft_version.ref, "--model", "x", "--output",
                     str(tmp_path / "o"), "--trl", "warmup_stesp=1")
    assert result.exit_code == 8 and "did you mean 'warmup_steps'" in result.output
    config = tmp_path / "c.yaml"
    config.write_text("learning_rat: 0.1\n")
    result = cli_run("train", "sft", "--data", sft_version.ref, "--model", "x", "--output",
                     str(tmp_path / "o"), "--config", str(config))
    assert result.exit_code == 8 and "learning_rate" in result.output
    result = cli_run("train", "grpo", "--data", sft_version.ref, "--model", "x", "--output",
                     str(tmp_path / "o"))
    assert result.exit_code == 6 and "rl_pool" in result.output


@pytest.mark.slow
def test_sft_smollm2_135m(store, sft_version, tmp_path):
    """The real embedded SmolLM2-135M, a few steps (minutes on 2 cores)."""
    from thinkforge.trainers.base import run_trainer
    from thinkforge.trainers.registry import config_model, get_method

    config = config_model("sft")(max_steps=3, learning_rate=1e-4, max_length=128)
    record = run_trainer(get_method("sft"), store, sft_version.ref, "smollm2-135m",
                         tmp_path / "out", config)
    assert all(math.isfinite(m["loss"]) for m in record.metrics if "loss" in m)
