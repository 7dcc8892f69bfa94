"""Issue 22 item 1: the GRPO / RLOO rewards score our data the way it was scored.

Closed loop, per reasoning format: a real OpenAI-compatible teacher (in this process) with
planted right, wrong, unmarked, malformed and fenced answers -> ``generate rollouts`` ->
the reward functions the GRPO and RLOO trainers are built with (``rl.build``: the same
two for both), run on the stored outputs and on the raw replies (the run's checkpoint),
with the prompt the trainer sends (the rollouts' template).  Accuracy equals the stored
``correct`` on every row; the format reward equals the stored ``format_ok`` on the raw
replies and is 1 on the stored output of every row the step accepted.
"""

from __future__ import annotations

import hashlib

import pytest
from thinkforge.manifests.selection import read_table

from tests.scripted_teacher import ScriptedServer

pytest.importorskip("openai")
pytest.importorskip("math_verify")


def _planted(problems: dict[str, str], fmt: str):
    """The teacher: the reply is picked from the variants of the request's mode by a hash of
    (problem, seed), so samples of one prompt differ."""

    def answer(body: dict) -> str:
        system = body["messages"][0]["content"]
        user = body["messages"][-1]["content"]
        gold = next(g for p, g in problems.items() if user.startswith(p))
        wrong = str(int(gold) + 1)
        if system.endswith("off"):
            variants = [gold, f"The answer is {wrong}.", f"<think>x</think>{gold}",
                        f"\\boxed{{{gold}}}"]
        elif fmt == "prompted":
            variants = [f"Step by step: done.\n\nFinal answer: {gold}",
                        f"Reasoning here.\n\nFinal answer: {wrong}",
                        f"Final answer: 999\nWait, recheck.\nFinal answer: {gold}",
                        f"I computed {gold} but forgot the marker.",
                        f"<think>I think</think>\n\nFinal answer: {gold}",
                        f"Final answer: {gold}",
                        f"Here is code\n```\n{gold}\n```",
                        f"Work.\n\n**Final answer:** $\\boxed{{{gold}}}$"]
        else:
            variants = [f"<think>work</think>\n\n{gold}",
                        f"<think>work</think>\n\n\\boxed{{{wrong}}}",
                        f"no think tags, answer {gold}",
                        f"<think>a</think><think>b</think>{gold}",
                        f"<think>work</think>\n\nThe answer is $\\boxed{{{gold}}}$.",
                        f"<think></think>{gold}"]
        pick = hashlib.sha256(f"{user}|{body.get('seed')}".encode()).digest()[0]
        return variants[pick % len(variants)]

    return answer


@pytest.mark.parametrize("fmt", ["prompted", "native"])
def test_rewards_equal_the_stored_labels_on_stored_outputs_and_raw_replies(store, data_dir, fmt):
    from thinkforge.curation.importer import ImportOptions, import_file
    from thinkforge.generators.config import BackendConfig, RolloutConfig
    from thinkforge.generators.reasoning import teacher_messages
    from thinkforge.generators.rollouts import generate_rollouts
    from thinkforge.generators.runs import RunCheckpoint
    from thinkforge.trainers.data import rollout_prompt_settings
    from thinkforge.trainers.rewards import reward_functions

    prompts = import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                          ImportOptions(name="gsm8k", preset="gsm8k"))
    prompt_rows = {r["id"]: r for r in read_table(store, prompts).to_pylist()[:8]}
    problems = {r["input"][-1]["content"]: r["ground_truth"] for r in prompt_rows.values()}
    with ScriptedServer(_planted(problems, fmt)) as teacher:
        config = RolloutConfig(teacher=BackendConfig(backend="openai", model="planted",
                                                     base_url=teacher.url),
                               modes=["on", "off"], k=4, limit=8, reasoning_format=fmt)
        rollouts = generate_rollouts(store, prompts, f"r-{fmt}", config, progress=False)
    rows = read_table(store, rollouts).to_pylist()
    raw = RunCheckpoint.attach(store.runs_dir / rollouts.provenance["run_id"]).load_successes()
    replies = {(r["prompt_id"], r["mode"], r["sample"]): r["text"] for r in raw.values()}

    # what GRPO / RLOO are built with: the format found through the lineage, the rewards
    settings = rollout_prompt_settings(store, rollouts)
    assert settings["reasoning_format"] == fmt
    accuracy, format_ = reward_functions(settings["reasoning_format"])
    prompts_sent = [teacher_messages(prompt_rows[r["prompt_id"]]["input"], r["reasoning"], fmt)
                    for r in rows]
    columns = {"ground_truth": [prompt_rows[r["prompt_id"]]["ground_truth"] for r in rows],
               "verifier": [prompt_rows[r["prompt_id"]]["verifier"] for r in rows],
               "reasoning": [r["reasoning"] for r in rows]}
    stored = [r["output"] for r in rows]
    replied = [replies[(r["prompt_id"], r["reasoning"], r["sample"])] for r in rows]
    expected_accuracy = [1.0 if r["correct"] else 0.0 for r in rows]
    expected_format = [1.0 if r["format_ok"] else 0.0 for r in rows]
    # planted right and wrong answers, kept and malformed shapes: the test can fail
    assert 0 < sum(expected_accuracy) < len(rows) and 0 < sum(expected_format) < len(rows)
    for completions in (stored, replied):
        as_chat = [[{"role": "assistant", "content": c}] for c in completions]
        assert accuracy(prompts_sent, as_chat, **columns) == expected_accuracy
    chat = [[{"role": "assistant", "content": c}] for c in replied]
    assert format_(prompts_sent, chat, **columns) == expected_format
    # the stored text: 1 on every row the step accepted (a marker-less fenced answer is
    # stored like a declared one, and SFT keeps it as a training target: 1 there too)
    chat = [[{"role": "assistant", "content": c}] for c in stored]
    on_stored = format_(prompts_sent, chat, **columns)
    assert all(got == 1.0 for got, ok in zip(on_stored, expected_format, strict=True) if ok)
    assert on_stored == [1.0 if r["format_ok"] or (fmt == "prompted" and r["reasoning"] == "on"
                                                   and "```" in r["output"]) else 0.0
                         for r in rows]


@pytest.mark.parametrize("fmt", ["prompted", "native"])
def test_accuracy_reward_equals_verified_on_stored_sft_outputs(store, data_dir, fmt):
    """A model SFT'd on our data writes the stored shape: GRPO must score it as verified."""
    from thinkforge.curation.importer import ImportOptions, import_file
    from thinkforge.generators.config import BackendConfig, SftConfig
    from thinkforge.generators.reasoning import teacher_messages
    from thinkforge.generators.sft import generate_sft
    from thinkforge.trainers.rewards import reward_functions

    prompts = import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                          ImportOptions(name="gsm8k", preset="gsm8k"))
    prompt_rows = {r["id"]: r for r in read_table(store, prompts).to_pylist()[:8]}
    problems = {r["input"][-1]["content"]: r["ground_truth"] for r in prompt_rows.values()}
    with ScriptedServer(_planted(problems, fmt)) as teacher:
        config = SftConfig(teacher=BackendConfig(backend="openai", model="planted",
                                                 base_url=teacher.url),
                           n=3, limit=8, reasoning_format=fmt, max_error_rate=1)
        sft = generate_sft(store, prompts, f"s-{fmt}", config, progress=False)
    rows = read_table(store, sft).to_pylist()
    accuracy, _ = reward_functions(fmt)
    got = accuracy([teacher_messages(r["input"], r["reasoning"], fmt) for r in rows],
                   [[{"role": "assistant", "content": r["output"]}] for r in rows],
                   ground_truth=[r["ground_truth"] for r in rows],
                   verifier=[prompt_rows[r["prompt_id"]]["verifier"] for r in rows],
                   reasoning=[r["reasoning"] for r in rows])
    assert got == [1.0 if r["verified"] else 0.0 for r in rows]
    assert 0 < sum(got) < len(rows)
