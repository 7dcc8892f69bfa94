import pytest
from thinkforge.filters.quality import QualityConfig, run_quality
from thinkforge.manifests.selection import read_rejected, read_table  # noqa: F401


def sft_row(i, reasoning, output, *, prompt="What is 2+2?", finish="stop", tokens=20):
    return {"id": f"s{i:03d}", "prompt_id": f"p{i}", "pair_id": f"p{i}", "category": "math",
            "reasoning": reasoning, "system_prompt": f"detailed thinking {reasoning}",
            "input": [{"role": "system", "content": f"detailed thinking {reasoning}"},
                      {"role": "user", "content": prompt}],
            "output": output, "generator": "t", "output_tokens": tokens, "finish_reason": finish}


CASES = {
    "ok_on": ("on", "<think>2 and 2 make 4</think>\n\nThe answer is 4.", {}, None),
    "ok_off": ("off", "The answer is 4.", {}, None),
    "no_think": ("on", "The answer is 4.", {}, "think_missing"),
    "two_blocks": ("on", "<think>a</think><think>b</think> 4", {}, "think_malformed"),
    "reversed": ("on", "</think>a<think> 4", {}, "think_malformed"),
    "text_before": ("on", "Sure! <think>a</think> 4", {}, "think_malformed"),
    "empty_think": ("on", "<think>  \n </think> 4", {}, "think_empty"),
    "no_answer": ("on", "<think>reasoning</think>   ", {}, "answer_missing"),
    "think_off": ("off", "<think>hmm</think> 4", {}, "think_in_off"),
    "empty": ("off", " \n\t ", {}, "empty_output"),
    "truncated": ("on", "<think>long", {"finish": "length"}, "truncated"),
    "boxed_ok": ("off", "so \\boxed{4}", {"prompt": "Put the answer in \\boxed{}."}, None),
    "boxed_missing": ("off", "so 4", {"prompt": "Put the answer in \\boxed{}."}, "boxed_missing"),
    # a \boxed the problem quotes from a worked solution is no instruction (issue 21 item 3)
    "boxed_quoted": ("off", "12.5", {"prompt": "Solution: so \\boxed{3.3e-10}. Now: 5 x 2.5?"},
                     None),
    "long_off": ("off", "4", {"tokens": 9000}, "too_long"),
    "long_on_ok": ("on", "<think>x</think> 4", {"tokens": 9000}, None),
    "approx_tokens": ("off", "word " * 7000, {"tokens": None}, "too_long"),  # 4/3 x 7000 > 8192
}


def make_sft(store):
    rows = [sft_row(i, mode, out, **kw) for i, (mode, out, kw, _) in enumerate(CASES.values())]
    with store.writer("sft", "sft", step={"type": "test"}) as w:
        w.write(rows)
    return w.manifest


def test_each_rule_names_its_reason(store):
    m = run_quality(store, make_sft(store), "clean")
    expected = {f"s{i:03d}": reason for i, (*_, reason) in enumerate(CASES.values())}
    kept = set(read_table(store, m).column("id").to_pylist())
    assert kept == {k for k, v in expected.items() if v is None}
    rejected = read_rejected(store, m).to_pylist()
    assert {r["id"]: r["reason"] for r in rejected} == {k: v for k, v in expected.items() if v}
    assert m.rows + m.rejected.rows == len(CASES)


def test_rules_can_be_chosen(store):
    m = run_quality(store, make_sft(store), "fmt", QualityConfig(rules=["truncated"],
                                                                 max_tokens_off=None))
    assert m.rejected.by_reason == {"truncated": 1}


def test_rollouts_are_checked_too(store):
    rows = [{"prompt_id": "p", "sample": s, "generator": "g", "reasoning": "on", "output": out,
             "finish_reason": "stop"} for s, out in enumerate(["<think>a</think> 1", "1"])]
    with store.writer("ro", "rollouts", step={"type": "test"}) as w:
        w.write(rows)
    m = run_quality(store, w.manifest, "ro-clean")
    assert m.kind == "rollouts" and m.rows == 1 and m.rejected.by_reason == {"think_missing": 1}
    assert m.provenance["skipped_rules"] == ["boxed"]


def test_language_rule_with_the_optional_detector(store):
    pytest.importorskip("langdetect")
    rows = [sft_row(0, "off", "The answer is four, because two plus two makes four in total."),
            sft_row(1, "off", "La respuesta es cuatro, porque dos más dos son cuatro en total."),
            sft_row(2, "on", "<think>deux et deux</think> La réponse est quatre, car deux plus "
                             "deux font quatre au total.")]
    with store.writer("langs", "sft", step={"type": "test"}) as w:
        w.write(rows)
    m = run_quality(store, w.manifest, "en-only",
                    QualityConfig(rules=["think_format", "language"], languages=["en"]))
    assert m.rows == 1 and m.rejected.by_reason == {"wrong_language": 2}


def test_language_rule_without_the_detector_names_the_extra(store, monkeypatch):
    import sys

    from thinkforge.manifests.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "langdetect", None)  # import now fails as if not installed
    with pytest.raises(MissingDependencyError, match="lang"):
        run_quality(store, make_sft(store), "x", QualityConfig(rules=["language"]))
