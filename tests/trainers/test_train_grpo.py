"""GRPO / RLOO in curriculum order on a tiny model; batch alignment; vLLM refused on CPU."""

from __future__ import annotations

import math

import pytest
from thinkforge.manifests.errors import ConfigError
from thinkforge.manifests.selection import read_rejected, read_table  # noqa: F401

from .conftest import weights_changed


def _curriculum_ids(pool_version, store):

    rows = read_table(store, pool_version).to_pylist()
    return [r["id"] for r in sorted(rows, key=lambda r: r["curriculum_position"])]


def _varied_format_reward(monkeypatch):
    """A random tiny model never earns accuracy or format rewards, and with every reward 0
    the advantages are 0 and nothing moves; this stand-in for the format reward varies with
    the text so the optimiser steps are real.  (The real rewards are tested on their own.)"""
    import thinkforge.trainers.rewards as rewards

    def varied(prompts, completions, **columns):
        texts = [rewards.completion_text(c) for c in completions]
        return [len(set(t)) / (len(t) + 1) for t in texts]

    varied.__name__ = "format"
    real = rewards.reward_functions
    monkeypatch.setattr(rewards, "reward_functions", lambda fmt: (real(fmt)[0], varied))


def test_grpo_follows_the_curriculum(store, pool_version, tiny_model, tmp_path, monkeypatch):
    """The prompts the trainer sampled (read back from the reward function's calls) come
    in curriculum_position order, one curriculum batch per optimiser step."""
    from thinkforge.trainers.base import run_trainer
    from thinkforge.trainers.registry import config_model, get_method

    _varied_format_reward(monkeypatch)
    config = config_model("grpo")(max_steps=3, learning_rate=1e-2, num_generations=2,
                                  per_device_train_batch_size=2, max_completion_length=8)
    session: dict = {}
    record = run_trainer(get_method("grpo"), store, pool_version.ref, str(tiny_model),
                         tmp_path / "grpo", config, session=session)
    assert record.config["gradient_accumulation_steps"] is None  # derived, not given
    assert record.extra["curriculum"]["curriculum_batch_size"] == 2
    assert record.extra["curriculum"]["prompts_per_step"] == 2
    assert session["trainer"].args.gradient_accumulation_steps == 2
    assert session["trainer"].args.shuffle_dataset is False
    sampled = record.extra["sampled_prompt_ids"]
    expected = _curriculum_ids(pool_version, store)
    assert len(sampled) == 6                       # 3 steps x 2 prompts
    assert sampled == expected[:6]
    assert expected != sorted(expected)            # the test data is not trivially ordered
    assert record.extra["follows_curriculum"] is True
    assert all(math.isfinite(m["loss"]) for m in record.metrics if "loss" in m)
    assert weights_changed(tiny_model, tmp_path / "grpo")
    # the prompt the pass rates were measured with: the system turn of the mode first
    first = session["trainer"].train_dataset[0]["prompt"]
    assert first[0] == {"role": "system", "content": "detailed thinking on"}


def test_misaligned_batches_are_a_clear_error(store, pool_version):
    from thinkforge.trainers.data import open_data
    from thinkforge.trainers.registry import config_model
    from thinkforge.trainers.rl import align_batches

    data = open_data(store, pool_version.ref, ("rl_pool",))
    config = config_model("grpo")(num_generations=2, per_device_train_batch_size=2,
                                  gradient_accumulation_steps=3)
    with pytest.raises(ConfigError) as err:
        align_batches(data, config, store)
    message = str(err.value)
    assert "curriculum batch size is 2" in message and "--gradient-accumulation-steps" in message
    assert "2 x 3 x 1 / 2" in message
    warn = config_model("grpo")(num_generations=2, per_device_train_batch_size=2,
                                gradient_accumulation_steps=3, curriculum="warn")
    align_batches(data, warn, store)  # only warns


def test_use_vllm_is_refused_on_cpu(store, pool_version, tmp_path, cli_run):
    result = cli_run("train", "grpo", "--data", pool_version.ref, "--model", "x", "--output",
                     str(tmp_path / "o"), "--use-vllm", "--vllm-mode", "server")
    assert result.exit_code == 8, result.output
    assert "--use-vllm needs CUDA" in result.output


def test_rewards_use_our_verifier_and_the_think_format():
    from thinkforge.trainers.rewards import AccuracyReward, format_reward

    completions = [[{"role": "assistant", "content": "<think>3 times 4</think>\n\n\\boxed{12}"}],
                   [{"role": "assistant", "content": "<think>hm</think>\n\n13"}],
                   [{"role": "assistant", "content": "12"}]]
    cols = {"ground_truth": ["12"] * 3, "verifier": ["math"] * 3, "reasoning": ["on", "on", "off"]}
    assert AccuracyReward("native")(None, completions, **cols) == [1.0, 0.0, 1.0]
    assert format_reward(None, completions, **cols) == [1.0, 1.0, 1.0]
    assert format_reward(None, completions, **{**cols, "reasoning": ["off", "on", "on"]}) == \
        [0.0, 1.0, 0.0]


def test_rloo_trains_in_curriculum_order(store, pool_version, tiny_model, tmp_path, monkeypatch):
    _varied_format_reward(monkeypatch)
    from thinkforge.trainers.base import run_trainer
    from thinkforge.trainers.registry import config_model, get_method

    config = config_model("rloo")(max_steps=2, learning_rate=1e-2, num_generations=2,
                                  per_device_train_batch_size=2, max_completion_length=8)
    record = run_trainer(get_method("rloo"), store, pool_version.ref, str(tiny_model),
                         tmp_path / "rloo", config)
    assert record.method == "rloo"
    assert record.extra["sampled_prompt_ids"] == _curriculum_ids(pool_version, store)[:4]
    assert weights_changed(tiny_model, tmp_path / "rloo")


def test_global_order_interleaves_the_ranks_calls():
    """Generation batch k is rank 0's call k then rank 1's; a group split over ranks counts once."""
    from thinkforge.trainers.rl import global_order

    rank0 = [["a", "a", "b"], ["e", "e", "f"]]
    rank1 = [["b", "c", "c"], ["f", "g", "g"]]
    assert global_order([rank0, rank1], 2) == ["a", "b", "c", "e", "f", "g"]
    assert global_order([[["a", "a", "b", "b"]]], 2) == ["a", "b"]
    assert global_order([[["x", "x"], ["y", "y"]], [["z", "z"]]], 2) == ["x", "z", "y"]
