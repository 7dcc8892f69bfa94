"""RLHF: generate preferences (verifier and reward-model scorers), reward model, DPO."""

from __future__ import annotations

import json
import math
import re

import pyarrow.parquet as pq
import pytest

from .conftest import same_logits, weights_changed


@pytest.fixture
def toy_prompts(store):
    rows = [{"id": f"t{i}", "source": "toy", "category": "math",
             "input": [{"role": "user", "content": f"What is {i} + 1?"}],
             "ground_truth": str(i + 1), "verifier": "math"} for i in range(4)]
    with store.writer("toy-prompts", "prompts", step={"type": "test"}) as w:
        w.write(rows)
    return w.manifest


def _scripted_policy():
    """p0, p2: the first sample right, the others wrong; p1: every sample right (a tie);
    p3: every sample the same wrong answer (a tie).  Samples of a prompt arrive in order."""
    seen: dict[int, int] = {}

    def answer(request):
        question = next(m["content"] for m in request.messages if m["role"] == "user")
        i = int(re.search(r"What is (\d+)", question).group(1))
        index = seen[i] = seen.get(i, -1) + 1
        if i == 1:
            return f"<think>one more</think>\n\nFinal answer: {i + 1}"
        if i == 3:
            return "<think>guess</think>\n\nFinal answer: 99"
        if index == 0:
            return f"<think>add one</think>\n\nFinal answer: {i + 1}"
        return f"<think>guess {index}</think>\n\nFinal answer: {i + 50 + index}"

    return answer


def test_generate_preferences_best_vs_worst_ties_dropped(store, toy_prompts, cli_run, monkeypatch):
    from tests.scripted_teacher import install

    install(monkeypatch, _scripted_policy())
    result = cli_run("generate", "preferences", "--prompts", "toy-prompts", "--policy", "scripted",
                     "--k", "4", "--name", "toy-prefs", "--reasoning-format", "native", "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["kind"] == "preferences" and manifest["rows"] == 2
    assert manifest["rejected"]["by_reason"] == {"all_equal_scores": 2}
    assert manifest["provenance"]["modes"] == ["on"]
    rows = pq.read_table(store.shard_paths(store.resolve("toy-prefs"))[0]).to_pylist()
    by_prompt = {r["prompt_id"]: r for r in rows}
    assert set(by_prompt) == {"t0", "t2"}
    assert "Final answer: 1" in by_prompt["t0"]["chosen"]
    assert by_prompt["t0"]["chosen_score"] > by_prompt["t0"]["rejected_score"]


def test_reward_model_trains_scores_and_rewards_rloo(store, prefs_version, pool_version,
                                                     toy_prompts, tiny_model, tmp_path, cli_run,
                                                     monkeypatch):
    from thinkforge.generators.preferences import load_reward_model, score_conversations
    from thinkforge.trainers.base import run_trainer
    from thinkforge.trainers.registry import config_model, get_method

    out = tmp_path / "rm"
    session: dict = {}
    record = run_trainer(get_method("reward"), store, prefs_version.ref, str(tiny_model), out,
                         config_model("reward")(max_steps=2, learning_rate=1e-2, max_length=64),
                         session=session)
    assert record.method == "reward" and record.extra["reasoning"] == "on"
    assert all(math.isfinite(m["loss"]) for m in record.metrics if "loss" in m)
    assert weights_changed(tiny_model, out)
    assert same_logits(session["trainer"].model, out, "AutoModelForSequenceClassification")
    model, tokenizer = load_reward_model(str(out))
    scores = score_conversations(model, tokenizer, [
        [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "2"}],
        [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "9"}]])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    # the reward model as the scorer of preference pairs
    from tests.scripted_teacher import install

    install(monkeypatch, _scripted_policy())
    result = cli_run("generate", "preferences", "--prompts", "toy-prompts", "--policy", "scripted",
                     "--k", "4", "--name", "rm-prefs", "--reasoning-format", "native",
                     "--scorer", f"reward-model:{out}", "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["step"]["config"]["scorer"] == f"reward-model:{out}"
    # p3's samples are one identical text: equal scores, rejected; the others differ
    assert manifest["rejected"]["by_reason"].get("all_equal_scores", 0) >= 1
    assert manifest["rows"] + manifest["rejected"]["rows"] == 4
    # the reward model as an RL reward function next to accuracy and format
    rloo = config_model("rloo")(max_steps=1, num_generations=2, per_device_train_batch_size=2,
                                max_completion_length=6, reward_model=str(out),
                                reward_model_weight=0.5)
    run = run_trainer(get_method("rloo"), store, pool_version.ref, str(tiny_model),
                      tmp_path / "rloo", rloo)
    assert run.extra["trl_config"]["reward_weights"] == [1.0, 0.2, 0.5]
    assert any(k.startswith("rewards/") and "rm" in k or "reward" in k
               for m in run.metrics for k in m)


def test_dpo_trains_with_the_reasoning_system_turn(store, prefs_version, tiny_model, tmp_path):
    from thinkforge.trainers.base import run_trainer
    from thinkforge.trainers.registry import config_model, get_method

    session: dict = {}
    out = tmp_path / "dpo"
    record = run_trainer(get_method("dpo"), store, prefs_version.ref, str(tiny_model), out,
                         config_model("dpo")(max_steps=2, learning_rate=1e-2, max_length=64),
                         session=session)
    assert record.extra["reasoning"] == "on"
    assert all(math.isfinite(m["loss"]) for m in record.metrics if "loss" in m)
    assert weights_changed(tiny_model, out)
    assert same_logits(session["trainer"].model, out)
    from thinkforge.trainers.data import open_data, preference_rows

    rows = preference_rows(open_data(store, prefs_version.ref, ("preferences",)), "on")
    assert rows[0]["prompt"][0] == {"role": "system", "content": "detailed thinking on"}
    assert rows[0]["chosen"][0]["role"] == "assistant"
