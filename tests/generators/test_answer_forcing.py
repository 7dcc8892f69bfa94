"""Answer forcing (s1's budget forcing) for the prompted ON format: a reply that stops
without its "Final answer:" line gets the marker appended and the teacher continues it.

The backend part runs a real transformers model built in the test
(tiny_model.build_forgetful_model): it writes "Two plus two" and stops, and after
"Final answer:" it writes " 4".
"""

from __future__ import annotations

import pytest
from thinkforge.generators.backends import ChatRequest, Sampling

from tests.generators.tiny_model import build_forgetful_model


@pytest.fixture(scope="module")
def forgetful(tmp_path_factory):
    pytest.importorskip("transformers")
    return build_forgetful_model(tmp_path_factory.mktemp("forgetful"))


def _transformers(path):
    from thinkforge.generators.backends import make_backend
    from thinkforge.generators.config import BackendConfig

    return make_backend(BackendConfig(model=str(path), device="cpu", cpu_threads=1), str(path))


def test_transformers_backend_continues_a_prefilled_reply(forgetful):
    backend = _transformers(forgetful)
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    greedy = Sampling(0.0, 1.0, 8, 0)
    plain, continued = backend.generate([
        ChatRequest("a", messages, greedy),
        ChatRequest("b", messages, greedy, "on", prefill="Two plus two\nFinal answer:")])
    assert (plain.text, plain.finish_reason) == ("Two plus two", "stop")
    # only what follows the prefill comes back, and its tokens: " ", "4", end of turn
    assert (continued.text, continued.finish_reason, continued.completion_tokens) == ("4", "stop", 3)
    assert continued.prompt_tokens > plain.prompt_tokens  # the prefill was part of the prompt


# -- the engine: which replies are forced, what the rows record, keys, resume -------------

ON = 'Write the calculation in one short line, then a last line "Final answer: <number>".'


def _numbers(request) -> list[int]:
    import re

    question = next(m["content"] for m in request.messages if m["role"] == "user")
    return [int(n) for n in re.findall(r"\d+", question.split("\n\n")[0])]


def forgetful_answer(request) -> str:
    """Right sums; ON never writes its answer line; a continued reply gives the sum, then
    goes on (only the first line is kept)."""
    total = sum(_numbers(request))
    if request.prefill is not None:
        assert request.prefill.endswith("\nFinal answer:") and request.sampling.temperature == 0
        return f" {total}\nThat is all."
    if request.messages[0]["content"] == "detailed thinking on":
        return " + ".join(map(str, _numbers(request))) + f" = {total}"
    return f"They have {total}."


@pytest.fixture
def easy(store, data_dir):
    from thinkforge.curation.importer import ImportOptions, import_file

    return import_file(store, data_dir / "easy_arith.jsonl", ImportOptions(name="easy", preset="gsm8k"))


def _sft(store, easy, forcing, name="s", limit=3):
    from thinkforge.generators.config import BackendConfig, SftConfig
    from thinkforge.generators.sft import generate_sft

    config = SftConfig(teacher=BackendConfig(model="scripted"), limit=limit,
                       instructions={"on": ON}, answer_forcing=forcing)
    return generate_sft(store, easy, name, config, progress=False)


def _rows(store, manifest, rejected=False):
    import pyarrow.parquet as pq

    paths = store.rejected_paths(manifest) if rejected else store.shard_paths(manifest)
    return [r for p in paths for r in pq.read_table(p).to_pylist()]


def test_on_replies_without_an_answer_line_are_forced_and_recorded(store, easy, monkeypatch):
    from tests.scripted_teacher import install

    teacher = install(monkeypatch, forgetful_answer)
    manifest = _sft(store, easy, {"tokens": 8})
    rows = _rows(store, manifest)
    on = [r for r in rows if r["reasoning"] == "on"]
    assert len(on) == 3 and all(r["verified"] for r in rows)
    assert on[0]["output"] == "<think>\n3 + 2 = 5\n</think>\n\n5"  # the first line only
    assert {r["finish_reason"] for r in on} == {"forced"}
    assert {r["output_tokens"] for r in on} == {10}                # 5 + 5: both rounds
    assert {r["finish_reason"] for r in rows if r["reasoning"] == "off"} == {"stop"}
    assert teacher.calls == 3 + 3 + 3                              # ON, forced ON, OFF
    facts = manifest.provenance["answer_forcing"]
    assert facts == {"tokens": 8, "after_length": False, "forced": 3,
                     "forced_after_length": 0, "failed_this_attempt": {}}
    assert manifest.provenance["completion_tokens"] == 3 * 10 + 3 * 5
    assert manifest.step.config["answer_forcing"] == {"tokens": 8, "after_length": False}

    # without forcing (the default): the same replies are rejected, nothing else changes
    plain = _sft(store, easy, None, name="plain")
    assert [r["reason"] for r in _rows(store, plain, rejected=True)] == ["format:no_final_answer"] * 3
    assert "answer_forcing" not in plain.step.config
    assert "answer_forcing" not in plain.provenance


def test_forcing_keys_only_the_requests_it_changes():
    from thinkforge.generators.config import SftConfig
    from thinkforge.generators.engine import plan_requests

    prompt = {"id": "p1", "input": [{"role": "user", "content": "1 + 1?"}], "category": "math"}
    plain, forced = SftConfig(), SftConfig(answer_forcing={"tokens": 16})
    keys = [{p.mode: p.key for p in plan_requests([prompt], c, ["on", "off"], 1)}
            for c in (plain, forced)]
    assert keys[0]["off"] == keys[1]["off"] and keys[0]["on"] != keys[1]["on"]
    assert "answer_forcing" not in plain.model_dump()   # records of existing steps unchanged
    with pytest.raises(ValueError, match="prompted"):
        SftConfig(reasoning_format="native", answer_forcing={})


def test_replies_with_an_answer_or_cut_at_the_cap_are_not_forced_unless_asked():
    from thinkforge.generators.backends import Completion
    from thinkforge.generators.forcing import Forcing, forced_prefix, wants_forcing

    plain, after_length = Forcing(16), Forcing(16, after_length=True)
    assert wants_forcing(plain, Completion("k", "3 + 2 = 5"))
    assert wants_forcing(plain, Completion("k", "3 + 2 = 5\nFinal answer:"))  # marker, no answer
    assert not wants_forcing(plain, Completion("k", "3 + 2 = 5\nFinal answer: 5"))
    assert not wants_forcing(None, Completion("k", "3 + 2 = 5"))
    cut = Completion("k", "3 + 2 = 5 and then", finish_reason="length")
    assert not wants_forcing(plain, cut) and wants_forcing(after_length, cut)
    assert not wants_forcing(plain, Completion("k", "", finish_reason="error", error_kind="timeout"))
    assert forced_prefix("3 + 2 = 5\nFinal answer:  ") == "3 + 2 = 5\nFinal answer:"
    assert forced_prefix("3 + 2 = 5  ") == "3 + 2 = 5\nFinal answer:"


def test_rollouts_are_forced_too(store, easy, monkeypatch):
    from thinkforge.generators.config import BackendConfig, RolloutConfig
    from thinkforge.generators.rollouts import generate_rollouts

    from tests.scripted_teacher import install

    install(monkeypatch, forgetful_answer)
    config = RolloutConfig(teacher=BackendConfig(model="scripted"), k=2, limit=2,
                           instructions={"on": ON}, answer_forcing={"tokens": 4})
    rows = _rows(store, generate_rollouts(store, easy, "r", config, progress=False))
    assert len(rows) == 4 and all(r["correct"] and r["format_ok"] for r in rows)
    assert {r["finish_reason"] for r in rows} == {"forced"}


def test_a_run_killed_in_a_forcing_round_resumes_without_redoing_finished_keys(
        store, easy, monkeypatch):
    from tests.scripted_teacher import install

    forcing_rounds = []

    def dies_in_the_second_forcing_round(request):
        if request.prefill is not None:
            forcing_rounds.append(request.key)
            if len(forcing_rounds) == 5:  # batches of 4: the first ON batch is checkpointed
                raise KeyboardInterrupt("killed")
        return forgetful_answer(request)

    teacher = install(monkeypatch, dies_in_the_second_forcing_round)
    with pytest.raises(KeyboardInterrupt):
        _sft(store, easy, {}, limit=6)
    [run_dir] = list(store.runs_dir.iterdir())
    import pyarrow.parquet as pq

    kept = [r for p in sorted(run_dir.glob("chunk-*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(kept) == 4 and {r["finish_reason"] for r in kept} == {"forced"}

    teacher = install(monkeypatch, forgetful_answer)
    manifest = _sft(store, easy, {}, limit=6)
    assert teacher.calls == 2 + 2 + 6                    # the 2 ON left, their forcing, OFF
    rows = _rows(store, manifest)
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    assert manifest.provenance["resumed_from_checkpoint"] == 4
    assert manifest.provenance["answer_forcing"]["forced"] == 6


class _NoPrefill:
    """A teacher that cannot continue a reply (error completions for prefilled requests)."""

    def __init__(self, config, model):
        self.identity, self.preferred_batch_size = {"backend": "no-prefill", "model": model}, 8

    def generate(self, requests):
        from thinkforge.generators.backends import Completion

        return [Completion(r.key, "", finish_reason="error", error_kind="http_400", error="no")
                if r.prefill is not None else Completion(r.key, forgetful_answer(r))
                for r in requests]

    def close(self):
        pass


def test_a_teacher_that_cannot_continue_leaves_the_replies_unforced(store, easy, monkeypatch,
                                                                   capsys):
    import thinkforge.generators.engine as engine

    monkeypatch.setattr(engine, "make_backend", _NoPrefill)
    manifest = _sft(store, easy, {})
    assert [r["reason"] for r in _rows(store, manifest, rejected=True)] == ["format:no_final_answer"] * 3
    assert manifest.provenance["answer_forcing"]["failed_this_attempt"] == {"http_400": 3}
    assert "answer forcing: the teacher did not continue a reply (http_400" in capsys.readouterr().err
    assert not manifest.provenance["errors_by_kind"]   # the replies themselves succeeded


def test_openai_teacher_gets_the_reply_to_continue(store, easy):
    from thinkforge.generators.config import BackendConfig, SftConfig
    from thinkforge.generators.sft import generate_sft

    from tests.scripted_teacher import ScriptedServer

    def server_answer(body) -> str:
        class Request:  # the scripted answer reads messages and the prefill
            messages = [m for m in body["messages"] if m["role"] != "assistant"]
            prefill = body["messages"][-1]["content"] if body.get("continue_final_message") else None
            sampling = type("S", (), {"temperature": body["temperature"]})
        if Request.prefill is not None:
            assert body["add_generation_prompt"] is False and body["messages"][-1]["role"] == "assistant"
        return forgetful_answer(Request)

    with ScriptedServer(server_answer) as server:
        config = SftConfig(teacher=BackendConfig(backend="openai", model="t", base_url=server.url),
                           limit=2, modes=["on"], instructions={"on": ON}, answer_forcing={})
        rows = _rows(store, generate_sft(store, easy, "o", config, progress=False))
    assert [r["output"].split("\n\n")[-1] for r in rows] == ["5", "9"]
    assert {r["finish_reason"] for r in rows} == {"forced"}


def test_transformers_teacher_forced_end_to_end(store, easy, forgetful):
    from thinkforge.generators.config import BackendConfig, SftConfig
    from thinkforge.generators.sft import generate_sft

    config = SftConfig(teacher=BackendConfig(model=str(forgetful), device="cpu", cpu_threads=1),
                       limit=2, modes=["on"], instructions={"on": ON}, answer_forcing={},
                       sampling_on={"max_new_tokens": 8})
    rows = _rows(store, generate_sft(store, easy, "t", config, progress=False))
    assert [r["output"] for r in rows] == ["<think>\nTwo plus two\n</think>\n\n4"] * 2
    assert [(r["finish_reason"], r["output_tokens"]) for r in rows] == [("forced", 7)] * 2
