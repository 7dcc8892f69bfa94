"""Exports load unchanged in `datasets` (every format), keep curriculum order, refuse damaged
versions, write atomically and record their source; pull copies a verified version."""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from thinkforge.curation.export import EXPORT_MANIFEST, export_version, pull_version
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import ConfigError, ConflictError, IntegrityError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# load_dataset caches Arrow copies; keep them out of the user's ~/.cache
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="tf-hf-cache-"))
datasets = pytest.importorskip("datasets")


def load(out):
    """What a trainer does: `datasets.load_dataset(<export dir>)`, the split from the file name."""
    return datasets.load_dataset(str(out))


def curriculum_keys(rows):
    return [(r["curriculum_batch"], r["curriculum_position"]) for r in rows]


def test_trl_sft_rows_are_messages_with_the_system_turn_first(store, versions, tmp_path):
    record = export_version(store, "toy-sft", "trl-sft", tmp_path / "sft")
    ds = load(tmp_path / "sft")["train"]
    assert ds.column_names == ["messages"] and len(ds) == 6 == record["rows"]
    for row in ds:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert row["messages"][0]["content"] in ("detailed thinking on", "detailed thinking off")
    on = [r for r in ds if r["messages"][0]["content"].endswith("on")]
    assert all(r["messages"][-1]["content"].startswith("<think>") for r in on)


def test_prompt_completion_splits_the_answer_from_the_prompt(store, versions, tmp_path):
    export_version(store, "toy-sft", "trl-prompt-completion", tmp_path / "pc")
    row = load(tmp_path / "pc")["train"][0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert [m["role"] for m in row["completion"]] == ["assistant"]


def test_grpo_keeps_curriculum_order_and_reward_columns(store, versions, tmp_path):
    export_version(store, "toy-pool", "trl-grpo", tmp_path / "grpo")
    ds = load(tmp_path / "grpo")["train"]
    assert curriculum_keys(ds) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    row = ds[0]
    assert row["prompt"][0] == {"role": "system", "content": "detailed thinking on"}
    assert row["solution"] == row["ground_truth"] and row["pass_rate"] is not None


def test_verl_columns_and_order(store, versions, tmp_path):
    record = export_version(store, "toy-pool", "verl", tmp_path / "verl")
    assert (tmp_path / "verl" / "train.parquet").is_file()
    ds = load(tmp_path / "verl")["train"]
    assert set(ds.column_names) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    row = ds[0]
    assert row["data_source"] == "openai/gsm8k" and row["ability"] == "math"
    assert row["reward_model"] == {"style": "rule", "ground_truth": row["reward_model"]["ground_truth"]}
    info = row["extra_info"]
    assert info["index"] == 0 and info["split"] == "train" and info["n_samples"] == 4
    assert info["policy_model"] == "smollm2-135m"  # found through lineage: pool <- rollouts
    assert info["dataset_version"] == "toy-pool@v1" == record["source"]["ref"]
    assert [r["extra_info"]["curriculum_batch"] for r in ds] == [0, 0, 0, 1, 1, 1]
    assert [r["extra_info"]["index"] for r in ds] == list(range(6))


def test_verl_on_a_prompts_version_and_custom_split(store, versions, tmp_path):
    export_version(store, "toy", "verl", tmp_path / "v", split="test", data_source="my/src",
                   reasoning="none")
    ds = load(tmp_path / "v")["test"]
    assert ds[0]["data_source"] == "my/src" and ds[0]["prompt"][0]["role"] == "user"
    assert ds[0]["extra_info"]["pass_rate"] is None


def test_dpo_conversational_pairs(store, versions, tmp_path):
    export_version(store, "toy-prefs", "trl-dpo", tmp_path / "dpo")
    row = load(tmp_path / "dpo")["train"][0]
    # auto: the chosen answer's reasoning mode as the system turn (no template default)
    assert row["prompt"] == [{"role": "system", "content": "detailed thinking off"},
                             {"role": "user", "content": "What is 2 + 3?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "The answer is 5."}]
    assert row["rejected"][0]["role"] == "assistant"


def test_nemotron_jsonl_has_the_public_schema(store, versions, tmp_path):
    export_version(store, "toy-sft", "nemotron", tmp_path / "nem")
    lines = (tmp_path / "nem" / "train.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"input", "output", "category", "license", "reasoning", "generator",
                          "used_in_training", "version", "system_prompt"}
    assert first["input"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert first["system_prompt"] == f"detailed thinking {first['reasoning']}"
    # NeMo Curator's tutorial: used_in_training is a list of model names, version a tag
    assert first["used_in_training"] == [] and first["version"] == versions["sft"].version
    assert len(load(tmp_path / "nem")["train"]) == 6


def test_openrlhf_records_the_flags_and_keys_match(store, versions, tmp_path):
    record = export_version(store, "toy-pool", "openrlhf", tmp_path / "orl")
    assert "--data.input_key prompt --data.label_key label" in record["openrlhf_args"]
    ds = load(tmp_path / "orl")["train"]
    assert ds[0]["prompt"][0]["role"] == "system" and ds[0]["label"] is not None
    assert [r["curriculum_batch"] for r in ds] == [0, 0, 0, 1, 1, 1]
    sft = export_version(store, "toy-sft", "openrlhf", tmp_path / "orl-sft")
    assert "--data.input_key input --data.output_key output" in sft["openrlhf_args"]
    row = load(tmp_path / "orl-sft")["train"][0]
    assert row["output"][0]["role"] == "assistant" and row["input"][0]["role"] == "system"


@pytest.mark.parametrize("kind", ["prompts", "sft", "rollouts", "rl_pool", "preferences"])
def test_hf_save_to_disk_keeps_every_column(store, versions, tmp_path, kind):
    manifest = versions[kind]
    export_version(store, manifest.ref, "hf", tmp_path / kind)
    ds = datasets.load_from_disk(str(tmp_path / kind))
    assert len(ds) == manifest.rows
    assert ds.column_names == [f["name"] for f in manifest.schema_]


def test_export_manifest_names_the_source_and_file_hashes(store, versions, tmp_path):
    export_version(store, "toy-sft", "trl-sft", tmp_path / "sft")
    record = json.loads((tmp_path / "sft" / EXPORT_MANIFEST).read_text())
    assert record["source"]["fingerprint"] == versions["sft"].fingerprint
    assert record["files"][0]["path"] == "train.parquet" and len(record["files"][0]["sha256"]) == 64


def test_a_modified_shard_is_refused_and_nothing_is_written(store, versions, tmp_path):
    shard = store.shard_paths(versions["sft"])[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        export_version(store, "toy-sft", "trl-sft", tmp_path / "sft")
    assert not any(tmp_path.glob("*sft*"))


def test_wrong_kind_unknown_format_and_existing_destination(store, versions, tmp_path):
    with pytest.raises(ConfigError, match="formats for rl_pool: .*verl"):
        export_version(store, "toy-pool", "trl-sft", tmp_path / "x")
    with pytest.raises(ConfigError, match="did you mean 'verl'"):
        export_version(store, "toy-pool", "verll", tmp_path / "x")
    export_version(store, "toy-sft", "trl-sft", tmp_path / "x")
    with pytest.raises(ConflictError, match="--overwrite"):
        export_version(store, "toy-sft", "nemotron", tmp_path / "x")
    export_version(store, "toy-sft", "nemotron", tmp_path / "x", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [EXPORT_MANIFEST, "train.jsonl"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pull_copies_a_verified_version_that_is_a_store_itself(store, versions, tmp_path):
    dest = pull_version(store, "toy-pool@v1", tmp_path / "pulled")
    assert dest == tmp_path / "pulled" / "datasets" / "toy-pool" / "v1"
    pulled = DatasetStore(tmp_path / "pulled").resolve("toy-pool@v1")
    assert pulled.fingerprint == versions["rl_pool"].fingerprint
    assert (dest / "rejected").is_dir()
    assert pull_version(store, "toy-pool", tmp_path / "pulled") == dest  # idempotent


def test_cli_export_and_pull(cli_run, versions, tmp_path):
    result = cli_run("export", "toy-pool", "--format", "verl", "--out", str(tmp_path / "v"))
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "v") in result.output
    assert load(tmp_path / "v")["train"].num_rows == 6
    result = cli_run("export", "toy-pool", "--format", "trl-sft", "--out", str(tmp_path / "w"))
    assert result.exit_code == 8 and "formats for rl_pool" in result.output
    plan = cli_run("export", "toy-pool", "--format", "verl", "--out", str(tmp_path / "d"),
                   "--dry-run")
    assert plan.exit_code == 0 and json.loads(plan.output)["file"] == "train.parquet"
    assert json.loads(plan.output)["curriculum_order"] is True and not (tmp_path / "d").exists()
    result = cli_run("pull", "toy-sft", "--to", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "datasets" / "toy-sft" / "v1" / "manifest.json").is_file()


def test_curation_modules_do_not_import_the_ml_stack_or_plotting():
    import subprocess
    import sys

    code = ("import sys, thinkforge.curation.export, thinkforge.curation.report, thinkforge.curation.recipe, "
            "thinkforge.curation.recipe_build, "
            "thinkforge.curation.recipe_steps, thinkforge.curation.mix, thinkforge.curation.split, "
            "thinkforge.curation_cmds; "
            "print([m for m in ('torch', 'transformers', 'trl', 'vllm', 'datasets', 'matplotlib') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
