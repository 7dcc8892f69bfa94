"""Issue 21 item 5: ``--judge`` on ``filter correct`` and ``filter passrate``.

Versions generated without a judge keep NULL labels on the rows no rule decides; the
filters ask a real OpenAI-compatible judge (tests/judge_table.py answers from a table)
about those rows only, use its yes/no, leave a hedge undecided, and share its cache.
"""

from __future__ import annotations

import pytest
from thinkforge.manifests.selection import read_rejected, read_table

from tests import judge_table
from tests.scripted_teacher import ScriptedServer

pytest.importorskip("openai")


def test_filters_settle_undecided_rows_with_the_judge(cli_run, store):
    from thinkforge.generators.judge import JUDGE_PROMPT_SHA256

    prompts = judge_table.make_prompts(store)
    with ScriptedServer(judge_table.teacher) as teacher, ScriptedServer(judge_table.judge) as judge:
        teacher_flags = ["--prompts", prompts.ref, "--backend", "openai", "--base-url",
                         teacher.url, "--model", "t"]
        judge_flags = ["--judge", "--judge-base-url", judge.url, "--judge-model", "jm"]
        assert cli_run("generate", "sft", *teacher_flags, "--name", "s").exit_code == 0
        assert cli_run("generate", "rollouts", *teacher_flags, "--name", "r", "--k", "2",
                       "--modes", "on,off").exit_code == 0
        assert judge.requests == []
        sft = {r["id"]: r for r in read_table(store, store.resolve("s")).to_pylist()}
        assert {r["verified"] for r in sft.values() if r["prompt_id"] in ("j1", "j2")} == {None}

        done = cli_run("filter", "correct", "s", "--name", "s-ok", "--pairs", "independent",
                       "--unverifiable", "drop", *judge_flags)
        assert done.exit_code == 0, done.output
        kept = store.resolve("s-ok")
        rows = read_table(store, kept).to_pylist()
        assert sorted((r["prompt_id"], r["verified"]) for r in rows) == [
            ("j1", True), ("j1", True), ("m1", True), ("m1", True)]
        reasons = {r["id"]: r["reason"] for r in read_rejected(store, kept).to_pylist()}
        assert {sft[i]["prompt_id"]: reason for i, reason in reasons.items()} == {
            "j2": "unverifiable", "m2": "incorrect", "c1": "unverifiable"}
        facts = kept.provenance["judge"]
        assert (facts["rows_judged"], facts["yes"], facts["undecided"], facts["asked"]) == \
            (4, 2, 2, 2)
        assert facts["prompt_sha256"] == JUDGE_PROMPT_SHA256 and facts["model"] == "jm"
        assert sorted(facts["decided_rows"]) == sorted(i for i in sft if sft[i]["prompt_id"] == "j1")
        assert kept.step.config["judge"]["model"] == "jm"
        assert len(judge.requests) == 2   # "South" (ON and OFF alike) and "Lyon"

        done = cli_run("filter", "passrate", "--rollouts", "r", "--name", "pool", "--keep-all",
                       *judge_flags)
        assert done.exit_code == 0, done.output
        pool = store.resolve("pool")
        by_id = {r["id"]: r for r in read_table(store, pool).to_pylist()}
        assert (by_id["j1"]["n_samples"], by_id["j1"]["n_correct"]) == (4, 4)
        assert (by_id["m1"]["pass_rate"], by_id["m2"]["pass_rate"]) == (1.0, 0.0)
        assert "j2" not in by_id and "c1" not in by_id      # still undecided: unverified
        facts = pool.provenance["judge"]
        assert (facts["rows_judged"], facts["cache_hits"], facts["asked"]) == (8, 8, 0)
        assert len(judge.requests) == 2   # everything came from the cache

        # without --judge the same filters keep their old records and results
        assert cli_run("filter", "passrate", "--rollouts", "r", "--name", "pool-rules",
                       "--keep-all").exit_code == 0
        plain = store.resolve("pool-rules")
        assert "judge" not in plain.step.config and "judge" not in plain.provenance
        assert "j1" not in {r["id"] for r in read_table(store, plain).to_pylist()}


def test_recipe_steps_take_the_judge_config(cli_run, store, tmp_path):
    """generate_rollouts and passrate in a recipe, each with a `judge:` mapping."""
    import json

    prompts = judge_table.make_prompts(store)
    with ScriptedServer(judge_table.teacher) as teacher, ScriptedServer(judge_table.judge) as judge:
        judge_cfg = f"{{mode: undecided, base_url: '{judge.url}', model: jm}}"
        recipe = tmp_path / "judged.yaml"
        recipe.write_text(f"""
name: judged
inputs:
  qs: {{version: {prompts.ref}}}
steps:
  - name: r
    type: generate_rollouts
    input: qs
    config:
      teacher: {{backend: openai, base_url: '{teacher.url}', model: t}}
      k: 2
      judge: {judge_cfg}
  - name: pool
    type: passrate
    inputs: {{rollouts: r}}
    config: {{drop_at_or_above: null, judge: {judge_cfg}}}
""")
        result = cli_run("build", str(recipe), "--json")
        assert result.exit_code == 0, result.output
        statuses = [s["status"] for s in json.loads(result.stdout)["steps"]]
        assert statuses.count("built") == 2, statuses   # r and pool (the input is pinned)
    rollouts, pool = store.resolve("r"), store.resolve("pool")
    assert rollouts.provenance["judge"]["yes"] == 2          # j1's two ON samples
    assert pool.provenance["judge"]["rows_judged"] == 2      # j2's, still undecided
    assert pool.provenance["judge"]["cache_hits"] == 2
    assert len(judge.requests) == 2
    assert {r["id"] for r in read_table(store, pool).to_pylist()} == {"j1", "m1", "m2"}
