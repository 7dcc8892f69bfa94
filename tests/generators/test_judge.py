"""Issue 21 item 5: an LLM judge for the rows the rule verifier leaves undecided.

A real OpenAI-compatible teacher and a real OpenAI-compatible judge (both HTTP servers in
this process, tests/scripted_teacher.py) that answers from a table (tests/judge_table.py).
"""

from __future__ import annotations

import socket

import pytest
from thinkforge.manifests.selection import read_table

from tests import judge_table
from tests.scripted_teacher import ScriptedServer

pytest.importorskip("openai")


def test_verdicts_are_parsed_strictly():
    from thinkforge.generators.judge import parse_verdict

    assert [parse_verdict(t) for t in ("yes", "No.", " YES \n", "no")] == [True, False, True,
                                                                          False]
    for hedge in ("yes, because", "Yes - equivalent", "maybe", "", None, "**yes**", "yes no"):
        assert parse_verdict(hedge) is None


def _config(teacher_url: str, judge_url: str | None, mode: str = "undecided", **more):
    from thinkforge.generators.config import BackendConfig, RolloutConfig
    from thinkforge.generators.judge import JudgeConfig

    judge = JudgeConfig(mode=mode, base_url=judge_url, model="judge-1", max_retries=0) \
        if mode != "off" else JudgeConfig()
    return RolloutConfig(teacher=BackendConfig(backend="openai", model="t", base_url=teacher_url),
                         modes=["on", "off"], k=2, reasoning_format="prompted", judge=judge,
                         **more)


def _by_prompt(store, manifest) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in read_table(store, manifest).to_pylist():
        out.setdefault(row["prompt_id"], []).append(row)
    return out


def test_rollouts_ask_the_judge_only_about_undecided_rows_and_cache_its_verdicts(store):
    from thinkforge.generators.judge import JUDGE_PROMPT_SHA256, JUDGE_PROMPT_VERSION
    from thinkforge.generators.rollouts import generate_rollouts

    prompts = judge_table.make_prompts(store)
    with ScriptedServer(judge_table.teacher) as teacher, ScriptedServer(judge_table.judge) as judge:
        made = generate_rollouts(store, prompts, "r", _config(teacher.url, judge.url),
                                 progress=False)
        rows = _by_prompt(store, made)
        assert {r["correct"] for r in rows["j1"]} == {True}       # judge: yes
        assert all(r["verdict"].startswith("judge:") for r in rows["j1"])  # who decided
        assert {r["reward"] for r in rows["j1"]} == {1.0}
        assert {r["correct"] for r in rows["j2"]} == {None}       # judge hedged: undecided
        assert {r["reward"] for r in rows["j2"]} == {None}
        assert {r["correct"] for r in rows["m1"]} == {True}       # rules decided, judge not asked
        assert {r["correct"] for r in rows["m2"]} == {False}
        assert {r["correct"] for r in rows["c1"]} == {None}       # no gold: nothing to judge
        # one request per distinct (problem, reply, gold): "South" ON and OFF, "Lyon"
        assert len(judge.requests) == 2
        assert {b["model"] for b in judge.requests} == {"judge-1"}
        facts = made.provenance["judge"]
        assert facts["prompt_version"] == JUDGE_PROMPT_VERSION
        assert facts["prompt_sha256"] == JUDGE_PROMPT_SHA256
        assert (facts["rows_judged"], facts["asked"], facts["yes"], facts["no"],
                facts["undecided"], facts["settled"]) == (8, 2, 4, 0, 4, 4)
        assert sorted(k[0] for k in facts["decided_rows"]) == ["j1"] * 4
        assert made.step.config["judge"] == {"mode": "undecided", "base_url": judge.url,
                                             "model": "judge-1", "api_key_env": "OPENAI_API_KEY",
                                             "max_new_tokens": 16}

        # the same step again: reused, nobody asked
        asked_teacher = len(teacher.requests)
        again = generate_rollouts(store, prompts, "r", _config(teacher.url, judge.url),
                                  progress=False)
        assert again.ref == made.ref and len(judge.requests) == 2
        assert len(teacher.requests) == asked_teacher

        # an audit: every row with a gold is judged; cached verdicts are not asked again,
        # rules still decide the rows they decided, and the disagreement (7 vs 6) is counted
        audit = generate_rollouts(store, prompts, "r-audit", _config(teacher.url, judge.url, "all"),
                                  progress=False)
        assert len(judge.requests) == 4
        facts = audit.provenance["judge"]
        assert facts["cache_hits"] == 8 and facts["asked"] == 2
        assert facts["agreement_with_rules"] == {"both_decided": 8, "agree": 4}
        assert {r["correct"] for r in _by_prompt(store, audit)["m2"]} == {False}


def test_a_step_without_judge_keeps_its_record(store):
    from thinkforge.generators.config import RolloutConfig, SftConfig

    assert "judge" not in RolloutConfig().model_dump()
    assert "judge" not in SftConfig().model_dump()


def test_a_dead_judge_publishes_nothing_and_says_where(store):
    from thinkforge.generators.rollouts import generate_rollouts
    from thinkforge.manifests.errors import GenerationFailedError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    prompts = judge_table.make_prompts(store)
    with ScriptedServer(judge_table.teacher) as teacher:
        with pytest.raises(GenerationFailedError) as err:
            generate_rollouts(store, prompts, "r", _config(teacher.url, dead), progress=False)
    assert f"the judge at {dead} (model judge-1) answered none" in str(err.value)
    assert "--judge-base-url" in err.value.hint
    assert store.names() == ["judged"]


def test_generate_sft_cli_judges_with_the_flags(cli_run, store, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-judge-123")
    prompts = judge_table.make_prompts(store)
    with ScriptedServer(judge_table.teacher) as teacher, ScriptedServer(judge_table.judge) as judge:
        base = ["generate", "sft", "--prompts", prompts.ref, "--name", "s", "--backend", "openai",
                "--base-url", teacher.url, "--model", "t"]
        missing = cli_run(*base, "--judge")
        assert missing.exit_code == 8, missing.output
        assert "--judge-base-url" in missing.output
        done = cli_run(*base, "--judge", "--judge-base-url", judge.url, "--judge-model", "jm",
                       "--judge-api-key-env", "MY_JUDGE_KEY")
        assert done.exit_code == 0, done.output
        # the key travels from the environment to the judge, and never into the record
        assert {h["authorization"] for h in judge.headers} == {"Bearer sk-judge-123"}
    made = store.resolve("s")
    rows = {(r["prompt_id"], r["reasoning"]): r["verified"]
            for r in read_table(store, made).to_pylist()}
    assert rows[("j1", "on")] is True and rows[("j1", "off")] is True
    assert rows[("j2", "on")] is None and rows[("m2", "on")] is False
    assert made.provenance["judge"]["mode"] == "undecided"
    assert made.provenance["judge"]["model"] == "jm"
    assert "sk-judge-123" not in made.model_dump_json()
    assert sorted(made.provenance["judge"]["decided_rows"]) == sorted(
        r["id"] for r in read_table(store, made).to_pylist() if r["prompt_id"] == "j1")


def test_generate_preferences_refuses_the_judge(cli_run, store):
    prompts = judge_table.make_prompts(store)
    result = cli_run("generate", "preferences", "--prompts", prompts.ref, "--policy", "t",
                     "--name", "p", "--judge", "--judge-base-url", "http://127.0.0.1:9/v1",
                     "--judge-model", "jm")
    assert result.exit_code == 8, result.output
    assert "does not take --judge" in result.output
