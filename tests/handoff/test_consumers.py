"""Exports as verl 0.9, OpenRLHF 0.11 and TRL consume them (issue 16 items 4-6).

The fast tests check what we print and write; the slow ones run the consumers' own code in
the test-only environment ``.venv-consumers`` (``make consumers-env``: verl and OpenRLHF
installed with --no-deps next to the main venv's torch/transformers) and skip without it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from thinkforge.curation.export import export_version

REPO = Path(__file__).resolve().parents[2]
CONSUMERS_PY = Path(os.environ.get("THINKFORGE_CONSUMERS_PY",
                                   REPO / ".venv-consumers" / "bin" / "python"))


def consumers_python(module: str) -> Path:
    if not CONSUMERS_PY.exists():
        pytest.skip("no .venv-consumers: run `make consumers-env` (verl, OpenRLHF --no-deps)")
    probe = subprocess.run([str(CONSUMERS_PY), "-c", f"import {module}"], capture_output=True,
                           text=True, check=False)
    if probe.returncode:
        pytest.skip(f"{module} is not importable in {CONSUMERS_PY}: {probe.stderr[-200:]}")
    return CONSUMERS_PY


def run_in_consumers(module: str, script: str, *args: str) -> str:
    python = consumers_python(module)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "RAY_DISABLE": "1"}
    done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_verl_compute_score_uses_our_verifier():
    from thinkforge.integrations.verl import compute_score

    math = {"verifier": "math", "answer_marker_required": True}
    assert compute_score("asdiv20", "<think>5+4</think>\n\nFinal answer: 9", "9 (apples)",
                         math) == 1.0
    assert compute_score("asdiv20", "Final answer: 25", "25.0", math) == 1.0
    assert compute_score("asdiv20", "There are 57 goldfish.", "57 (goldfish)", math) == 0.0
    assert compute_score("x", "Final answer: 57", "57 (goldfish)", {"verifier": "math"}) == 1.0
    code = {"verifier": "code"}
    tests = "def check(f):\n    assert f(2) == 4\n\ncheck(double)\n"
    assert compute_score("he", "```python\ndef double(x):\n    return 2 * x\n```", tests,
                         code) == 1.0
    assert compute_score("he", "```python\ndef double(x):\n    return x\n```", tests, code) == 0.0


def test_verl_export_prints_the_reward_and_order_overrides(store, pool, tmp_path, cli_run):
    result = cli_run("export", pool.ref, "--format", "verl", "--out", str(tmp_path / "v"))
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "v" / ".thinkforge-export.json").read_text())
    overrides = record["verl_overrides"]
    for part in ("reward.custom_reward_function.path=pkg://thinkforge.integrations.verl",
                 "reward.custom_reward_function.name=compute_score", "data.shuffle=False"):
        assert part in overrides and part in result.stderr


def test_trl_grpo_export_says_shuffle_dataset_false(store, pool, tmp_path, cli_run):
    result = cli_run("export", pool.ref, "--format", "trl-grpo", "--out", str(tmp_path / "g"))
    assert "shuffle_dataset=False" in result.stderr


def test_openrlhf_flags_are_0_11_and_stages_keep_the_curriculum(store, pool, tmp_path, cli_run):
    result = cli_run("export", pool.ref, "--format", "openrlhf", "--out", str(tmp_path / "o"),
                     "--stages", "2")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "o" / ".thinkforge-export.json").read_text())
    assert record["openrlhf_release"] == "0.11"
    assert record["openrlhf_args"].startswith("--data.prompt_dataset ")
    assert "--prompt_data" not in record["openrlhf_args"] and "shuffles" in result.stderr
    stages = record["openrlhf_stages"]
    assert len(stages) == 2
    seen = []
    for stage in stages:
        rows = [json.loads(line) for line in (tmp_path / "o" / stage["path"]).read_text().splitlines()]
        seen += [r["curriculum_batch"] for r in rows]
    whole = [json.loads(x)["curriculum_batch"]
             for x in (tmp_path / "o" / "train.jsonl").read_text().splitlines()]
    assert seen == whole == sorted(whole)


@pytest.mark.slow
def test_openrlhf_parses_our_flags_with_its_own_parser(store, versions, pool, tmp_path):
    """Each trainer's argparse block from OpenRLHF 0.11's own source, fed our flags."""
    checks = []
    for ref, trainer in ((pool.ref, "train_ppo_ray"), ("toy-sft", "train_sft"),
                         ("toy-prefs", "train_dpo")):
        record = export_version(store, ref, "openrlhf", tmp_path / trainer)
        assert record["openrlhf_trainer"] == f"openrlhf.cli.{trainer}"
        checks.append((trainer, record["openrlhf_args"]))
    script = r'''
import argparse, datetime, importlib.util, json, shlex, sys, textwrap
for trainer, flags in json.loads(sys.argv[1]):
    path = importlib.util.find_spec(f"openrlhf.cli.{trainer}").origin
    source = open(path).read()
    block = source.split('if __name__ == "__main__":', 1)[1].split("args = parser.parse_args()")[0]
    scope = {"argparse": argparse, "datetime": datetime.datetime}
    exec(textwrap.dedent(block), scope)
    args = scope["parser"].parse_args(shlex.split(flags))
    ns = vars(args)
    print(trainer, json.dumps({k: v for k, v in ns.items() if k.startswith("data.")}, default=str))
'''
    out = run_in_consumers("openrlhf", script, json.dumps(checks))
    parsed = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in out.splitlines()}
    assert parsed["train_ppo_ray"]["data.input_key"] == "prompt"
    assert parsed["train_ppo_ray"]["data.label_key"] == "label"
    assert parsed["train_ppo_ray"]["data.prompt_dataset"].endswith("train.jsonl")
    assert parsed["train_sft"]["data.output_key"] == "output"
    assert parsed["train_dpo"]["data.chosen_key"] == "chosen"


VERL_SCRIPT = r'''
import json, sys
from omegaconf import OmegaConf
from transformers import AutoTokenizer
import verl
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
from verl.trainer.ppo.reward import get_custom_reward_fn
from importlib.resources import files

parquet, tokenizer_dir, overrides = sys.argv[1], sys.argv[2], sys.argv[3].split()
base = OmegaConf.load(str(files("verl") / "trainer/config/_generated_ppo_trainer.yaml"))
config = OmegaConf.merge(base, OmegaConf.from_dotlist(overrides))
assert config.data.shuffle is False
tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
data_config = OmegaConf.create({"prompt_key": config.data.prompt_key, "max_prompt_length": 1024,
                                "truncation": "error", "filter_overlong_prompts": False,
                                "return_raw_chat": True})
dataset = RLHFDataset(data_files=[parquet], tokenizer=tokenizer, config=data_config)
batch = collate_fn([dataset[i] for i in range(len(dataset))])
reward = get_custom_reward_fn(config)
scores, order = [], []
for i in range(len(dataset)):
    info = batch["extra_info"][i]
    gold = batch["reward_model"][i]["ground_truth"]
    answer = "<think>x</think>\n\nFinal answer: " + gold.split()[0]
    right = reward(data_source=batch["data_source"][i], solution_str=answer,
                   ground_truth=gold, extra_info=info)
    wrong = reward(data_source=batch["data_source"][i], solution_str="Final answer: -12345",
                   ground_truth=gold, extra_info=info)
    scores.append([right, wrong])
    order.append(info["curriculum_batch"])
print(json.dumps({"verl": verl.__version__, "rows": len(dataset), "scores": scores, "order": order,
                  "raw_prompt": batch["raw_prompt"][0] if "raw_prompt" in batch else None}))
'''


@pytest.mark.slow
def test_verl_rlhf_dataset_and_reward_on_our_export(store, pool, tmp_path, smollm2_tokenizer):
    record = export_version(store, pool.ref, "verl", tmp_path / "verl")
    smollm2_tokenizer.save_pretrained(tmp_path / "tok")
    out = run_in_consumers("verl", VERL_SCRIPT, str(tmp_path / "verl" / "train.parquet"),
                           str(tmp_path / "tok"), record["verl_overrides"])
    result = json.loads(out.strip().splitlines()[-1])
    rows = pq.read_table(tmp_path / "verl" / "train.parquet").to_pylist()
    assert result["rows"] == len(rows) == pool.rows
    assert all(s == [1.0, 0.0] for s in result["scores"]), result["scores"]
    assert result["order"] == sorted(result["order"]) == [r["extra_info"]["curriculum_batch"]
                                                         for r in rows]
    print(f"\nverl {result['verl']}: RLHFDataset read {result['rows']} rows in curriculum order, "
          f"custom reward scored {result['scores'][:3]}...")


def test_trl_dpo_auto_adds_the_reasoning_system_turn(store, versions, tmp_path):
    export_version(store, "toy-prefs", "trl-dpo", tmp_path / "dpo")
    row = pq.read_table(tmp_path / "dpo" / "train.parquet").to_pylist()[0]
    assert row["prompt"][0] == {"role": "system", "content": "detailed thinking off"}
    none = export_version(store, "toy-prefs", "trl-dpo", tmp_path / "dpo-none", reasoning="none")
    assert none["options"]["reasoning"] is None


def test_trl_sft_export_says_to_prefer_prompt_completion(store, versions, tmp_path):
    record = export_version(store, "toy-sft", "trl-sft", tmp_path / "sft")
    assert any("trl-prompt-completion" in n for n in record["trainer_notes"])


def test_nemotron_schema_conventions(store, versions, tmp_path, cli_run):
    result = cli_run("export", "toy-sft", "--format", "nemotron", "--out", str(tmp_path / "n"),
                     "--release", "v1", "--used-in-training", "Nano,Super")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "n" / "train.jsonl").read_text().splitlines()]
    assert {r["version"] for r in rows} == {"v1"}
    assert all(r["used_in_training"] == ["Nano", "Super"] for r in rows)
    assert all(r["license"] for r in rows)
    default = export_version(store, "toy-sft", "nemotron", tmp_path / "n2")
    rows = [json.loads(x) for x in (tmp_path / "n2" / "train.jsonl").read_text().splitlines()]
    assert all(r["used_in_training"] == [] for r in rows)  # never a made-up "yes"
    assert "yes" not in json.dumps(rows)
    assert default["warnings"] == [] or "licence" in default["warnings"][0]


def test_nemotron_missing_licence_is_unknown_with_a_warning(store, tmp_path, cli_run):
    row = {"id": "a", "prompt_id": "p", "pair_id": "p", "category": "math", "reasoning": "off",
           "system_prompt": "detailed thinking off",
           "input": [{"role": "user", "content": "q"}], "output": "4", "generator": "g"}
    with store.writer("nolic", "sft", step={"type": "test"}) as w:
        w.write([row])
    result = cli_run("export", "nolic", "--format", "nemotron", "--out", str(tmp_path / "n"))
    assert "1 of 1 rows have no licence" in result.stderr
    assert json.loads((tmp_path / "n" / "train.jsonl").read_text())["license"] == "unknown"
    cli_run("export", "nolic", "--format", "nemotron", "--out", str(tmp_path / "m"),
            "--license", "cc-by-4.0")
    assert json.loads((tmp_path / "m" / "train.jsonl").read_text())["license"] == "cc-by-4.0"
