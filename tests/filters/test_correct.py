"""Issue 9 item 2: rejection sampling for SFT (`generate sft --n`, `filter correct`)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from thinkforge.filters.correct import CorrectConfig, run_correct
from thinkforge.generators.runs import stable_hash
from thinkforge.manifests.schemas import SYSTEM_PROMPTS


def rows_of(store, manifest, rejected=False):
    from thinkforge.manifests.selection import read_rejected, read_table  # plain shards or a selection

    return (read_rejected(store, manifest) if rejected else read_table(store, manifest)).to_pylist()


def sft_version(store, prompts, verdicts, name="cands", tokens=None):
    """sft rows: verdicts[(prompt index, mode)] = [verified of sample 0, 1, ...] (``...``: no
    row for that sample)."""
    rows = []
    prompt_rows = [r for p in store.shard_paths(prompts) for r in pq.read_table(p).to_pylist()]
    for (i, mode), samples in verdicts.items():
        prompt = prompt_rows[i]
        for sample, verified in enumerate(samples):
            if verified is ...:  # never stored (rejected at generation): its twin is an orphan
                continue
            rows.append({
                "id": stable_hash([prompt["id"], mode, sample], 24), "prompt_id": prompt["id"],
                "pair_id": stable_hash([prompt["id"], sample], 16), "category": "math",
                "reasoning": mode, "system_prompt": SYSTEM_PROMPTS[mode], "input": prompt["input"],
                "output": f"{mode} answer {sample}", "generator": "t", "license": None,
                "ground_truth": "1", "verified": verified,
                "answer": "1" if verified else f"w{sample}",
                "output_tokens": (tokens or {}).get((i, mode, sample), 10 + sample),
                "finish_reason": "stop"})
    with store.writer(name, "sft", step={"type": "test.sft"}, parents=[prompts]) as w:
        w.write(rows)
    return w.manifest, prompt_rows


def _sample(row):
    return next(s for s in range(16) if stable_hash([row["prompt_id"], s], 16) == row["pair_id"])


def test_only_verified_answers_pass_and_pairs_stay_whole(store, gsm8k):
    data, prompts = sft_version(store, gsm8k, {
        (0, "on"): [False, True, True], (0, "off"): [True, True, False],   # pair 1 both right
        (1, "on"): [True, False], (1, "off"): [False, False],              # no pair both right
        (2, "on"): [None, True], (2, "off"): [None, False]})                # unverifiable pair 0
    m = run_correct(store, data, "good", CorrectConfig(pick="first"))
    kept = rows_of(store, m)
    assert {(r["prompt_id"], r["reasoning"], _sample(r)) for r in kept} == {
        (prompts[0]["id"], "on", 1), (prompts[0]["id"], "off", 1),     # the first whole pair
        (prompts[2]["id"], "on", 0), (prompts[2]["id"], "off", 0)}     # unverifiable: kept
    rejected = {(r["prompt_id"], r["reasoning"], _sample(r)): r["reason"]
                for r in rows_of(store, m, rejected=True)}
    assert rejected[(prompts[0]["id"], "on", 0)] == "incorrect"
    assert rejected[(prompts[0]["id"], "off", 0)] == "pair_partner:on:incorrect"   # names its twin
    assert rejected[(prompts[0]["id"], "on", 2)] == "pair_partner:off:incorrect"
    assert rejected[(prompts[1]["id"], "on", 0)] == "pair_partner:off:incorrect"
    assert m.rows + m.rejected.rows == data.rows
    assert m.provenance["pairs"]["policy"] == "drop-whole"
    assert m.provenance["pairs"]["complete_pairs_kept"] == 2


@pytest.mark.parametrize("pick", ["best", "first", "shortest"])
def test_a_complete_pair_is_picked_before_an_orphan(store, gsm8k, pick):
    """Issue 23 item 7: a greedy OFF answer copied to every sample whose ON twin of sample 0
    was rejected at generation is an orphan; the verified pair of sample 1 goes on."""
    data, prompts = sft_version(store, gsm8k, {
        (0, "on"): [..., True, False], (0, "off"): [True, True, True],
        (1, "on"): [..., ...], (1, "off"): [True, True]})                  # orphans only
    m = run_correct(store, data, "good", CorrectConfig(pick=pick))
    kept = {(r["prompt_id"], r["reasoning"], _sample(r)) for r in rows_of(store, m)}
    assert kept == {(prompts[0]["id"], "on", 1), (prompts[0]["id"], "off", 1),
                    (prompts[1]["id"], "off", 0)}


def test_unverifiable_drop_best_and_the_verified_rate(store, gsm8k):
    data, prompts = sft_version(store, gsm8k, {
        (0, "on"): [None, True, True], (0, "off"): [None, True, True],
        (1, "on"): [None], (1, "off"): [None]})
    m = run_correct(store, data, "good", CorrectConfig(unverifiable="drop"))
    kept = rows_of(store, m)
    # best: a verified pair; the two verified pairs agree on the answer, so the lower sample
    assert {(r["reasoning"], _sample(r)) for r in kept} == {("on", 1), ("off", 1)}
    assert all(r["verified"] for r in kept) and m.stats["verified_rate"]["on"]["rate"] == 1.0
    assert m.rejected.by_reason == {"unverifiable": 4, "not_picked": 2}
    from thinkforge.manifests.sql import run_sql  # "name/rejected": the latest version's rejected rows

    rows = run_sql(store, 'SELECT reason, count(*) AS n FROM "good/rejected" GROUP BY ALL')
    by_reason = {r["reason"]: r["n"] for r in rows.table().to_pylist()}
    assert by_reason == {"unverifiable": 4, "not_picked": 2}
    on = m.provenance["by_mode"]["on"]
    assert (on["candidates"], on["kept"], on["verified_rate_after"]) == (4, 1, 1.0)


def test_independent_shortest_and_all(store, gsm8k):
    data, _ = sft_version(store, gsm8k, {(0, "on"): [True, True, True], (0, "off"): [False, True]},
                          tokens={(0, "on", 0): 50, (0, "on", 1): 30, (0, "on", 2): 40})
    short = run_correct(store, data, "short", CorrectConfig(pairs="independent", pick="shortest"))
    assert sorted((r["reasoning"], _sample(r)) for r in rows_of(store, short)) == [
        ("off", 1), ("on", 1)]
    every = run_correct(store, data, "every", CorrectConfig(pairs="independent", pick="all"))
    assert every.rows == 4 and every.rejected.by_reason == {"incorrect": 1}
    whole = run_correct(store, data, "whole", CorrectConfig(pairs="keep-whole", pick="all"))
    assert whole.rows == 5    # the pair of OFF's wrong sample 0 is kept whole: its ON is right


def test_filter_correct_cli_and_recipe_step(cli_run, store, gsm8k, tmp_path):
    sft_version(store, gsm8k, {(0, "on"): [False, True], (0, "off"): [True, True]})
    result = cli_run("filter", "correct", "cands", "--name", "ok", "--pick", "first")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok@v1" and store.resolve("ok").rows == 2
    plan = cli_run("filter", "correct", "cands", "--name", "ok2", "--dry-run", "--json")
    assert plan.exit_code == 0 and '"filter.correct"' in plan.stdout
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ninputs: {c: {version: cands}}\nsteps:\n"
                      "  - {name: ok3, type: correct, input: c, config: {pick: first}}\n")
    built = cli_run("build", str(recipe))
    assert built.exit_code == 0, built.output
    assert store.resolve("ok3").fingerprint == store.resolve("ok").fingerprint


def test_generate_n_candidates_then_keep_the_correct_ones(cli_run, store, gsm8k, monkeypatch):
    """End to end with the scripted (known-right) teacher: --n 3, right on odd seeds only."""
    from tests.scripted_teacher import install

    truths = {r["input"][0]["content"]: r["ground_truth"]
              for p in store.shard_paths(gsm8k) for r in pq.read_table(p).to_pylist()}

    def answer(request):
        question = request.messages[1]["content"].split("\n")[0]
        right = request.sampling.seed % 2 == 1
        return f"Work.\n\nFinal answer: {truths[question] if right else '-7'}"

    install(monkeypatch, answer)
    made = cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "cands", "--n", "3",
                   "--limit", "6")
    assert made.exit_code == 0, made.output
    cands = store.resolve("cands")
    assert cands.rows == 36 and cands.step.config["n"] == 3
    result = cli_run("filter", "correct", "cands", "--name", "good", "--pairs", "independent")
    assert result.exit_code == 0, result.output
    good = store.resolve("good")
    kept = rows_of(store, good)
    assert kept and all(r["verified"] for r in kept)
    per = {}
    for r in kept:
        per[(r["prompt_id"], r["reasoning"])] = per.get((r["prompt_id"], r["reasoning"]), 0) + 1
    assert set(per.values()) == {1}          # one answer per prompt and mode


@pytest.mark.parametrize("kind_fixture", ["gsm8k"])
def test_a_non_sft_version_is_refused(store, gsm8k, kind_fixture):
    from thinkforge.manifests.errors import InputDataError

    with pytest.raises(InputDataError, match="needs 'sft'"):
        run_correct(store, gsm8k, "x")


def test_low_verified_rate_warns_naming_the_version(cli_run, store, gsm8k, tmp_path, monkeypatch):
    """The warning of item 2: summary line, stderr of the publishing command, and build."""
    from click.testing import CliRunner

    from thinkforge.cli import cli, load_commands

    sft_version(store, gsm8k, {(0, "on"): [False, False, True], (0, "off"): [False] * 3,
                               (1, "on"): [False] * 3, (1, "off"): [True, False, False]})
    load_commands()
    run = CliRunner().invoke(cli, ["--store", str(store.root), "filter", "correct", "cands",
                                   "--name", "all", "--pick", "all", "--unverifiable", "keep",
                                   "--pairs", "keep-whole"])
    assert run.exit_code == 0, run.output
    # keep-whole keeps the wrong twins of the two right answers: 2 of 4 = 50% >= 20%
    assert "verified 50% (2/4)" in run.stderr and "warning" not in run.stderr
    monkeypatch.setenv("THINKFORGE_VERIFIED_RATE_WARNING", "0.6")
    again = cli_run("filter", "correct", "cands", "--name", "all2", "--pick", "all",
                    "--pairs", "keep-whole")
    assert "warning: all2@v1: verified rate 50% (2 of 4 checked answers" in again.stderr
    assert "below 60%" in again.stderr
    monkeypatch.delenv("THINKFORGE_VERIFIED_RATE_WARNING")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ninputs: {c: {version: cands}}\nsteps:\n"
                      "  - {name: s, type: split, input: c, config: {validation: 0.5}}\n")
    built = cli_run("build", str(recipe))
    assert built.exit_code == 0, built.output
    for part in ("s-train", "s-validation"):    # 2 of 12 verified overall: 17% < 20%
        m = store.resolve(part)
        rate = m.stats["verified_rate"]
        if m.rows == 0:
            assert f"warning: {m.ref} holds no rows" in built.stderr
            continue
        low = sum(v["true"] for v in rate.values()) / m.rows < 0.2
        assert (f"warning: {m.ref}: verified rate" in built.stderr) == low


def test_greedy_off_is_asked_once_per_prompt_and_copied_to_every_sample(store, gsm8k, monkeypatch):
    """--n with a greedy OFF: the same text n times, so it is generated once (pairs stay aligned)."""
    from thinkforge.generators.sft import SftConfig, generate_sft

    from tests.scripted_teacher import install

    teacher = install(monkeypatch,
                      lambda r: f"Work.\n\nFinal answer: {r.sampling.seed % 7}")
    m = generate_sft(store, gsm8k, "s", SftConfig(limit=2, n=3), progress=False)
    assert teacher.calls == 2 * 3 + 2          # ON: 3 samples each; OFF: one greedy answer each
    rows = rows_of(store, m)
    assert len(rows) == 12 and len({r["pair_id"] for r in rows}) == 6
    off = [r for r in rows if r["reasoning"] == "off"]
    assert len({(r["prompt_id"], r["output"]) for r in off}) == 2
    assert m.provenance["requests"] == 8 and m.provenance["greedy_copies"] == 4


def test_unverifiable_judge_later_sets_rows_aside_for_a_judge(store, gsm8k):
    data, _ = sft_version(store, gsm8k, {
        (0, "on"): [True], (0, "off"): [True],
        (1, "on"): [None], (1, "off"): [None]})
    m = run_correct(store, data, "judged", CorrectConfig(unverifiable="judge", pairs="independent"))
    assert [r["verified"] for r in rows_of(store, m)] == [True, True]
    assert m.rejected.by_reason == {"awaiting_judge": 2}
    from thinkforge.manifests.sql import run_sql

    rows = run_sql(store, """SELECT verified, reason FROM "judged/rejected" """).table().to_pylist()
    assert rows == [{"verified": None, "reason": "awaiting_judge"}] * 2
