"""Issue 23 item 1: reasoning servers as they answer, through a local OpenAI-compatible server.

vLLM >= 0.11 with --reasoning-parser and OpenRouter send the thinking in
``message.reasoning``, DeepSeek's API (and older vLLM) in ``message.reasoning_content``;
a server without a parser sends it inline, and a chat template that pre-fills ``<think>``
drops the opening tag.  Every shape must store the same canonical ON row.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from thinkforge.generators.sft import SftConfig, generate_sft

from tests.generators.fault_proxy import FakeOpenAIServer

pytest.importorskip("openai")

REASONING, ANSWER = "2 + 40 = 42.", "The answer is 42."
CANONICAL = f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"


def thinking_on(body: dict) -> bool:
    kwargs = body.get("chat_template_kwargs") or {}
    if "thinking" in kwargs:
        return kwargs["thinking"]
    return body["messages"][0]["content"].endswith("on")


def server_shape(shape: str):
    """A reasoning server's reply in one wire format (OFF: the answer alone)."""
    def reply(body):
        if not thinking_on(body):
            return {"content": ANSWER}, "stop"
        if shape in ("reasoning", "reasoning_content"):
            return {shape: REASONING, "content": ANSWER}, "stop"
        if shape == "inline":
            return {"content": f"<think>{REASONING}</think>\n{ANSWER}"}, "stop"
        if shape == "inline+prefilled":
            return {"content": f"{REASONING}\n</think>\n\n{ANSWER}"}, "stop"
        raise AssertionError(shape)
    return reply


def rows_of(store, manifest):
    return [r for p in store.shard_paths(manifest) for r in pq.read_table(p).to_pylist()]


def teacher(url: str, **extra) -> dict:
    return {"backend": "openai", "base_url": url, "model": "r1", "concurrency": 2,
            "max_retries": 0, **extra}


@pytest.mark.parametrize("shape", ["reasoning", "reasoning_content", "inline", "inline+prefilled"])
def test_every_wire_format_stores_the_same_canonical_row(store, gsm8k, shape):
    with FakeOpenAIServer(server_shape(shape)) as server:
        made = generate_sft(store, gsm8k, "s", SftConfig(
            limit=2, reasoning_format="native", teacher=teacher(server.url)), progress=False)
    rows = rows_of(store, made)
    assert {r["output"] for r in rows if r["reasoning"] == "on"} == {CANONICAL}
    assert {r["output"] for r in rows if r["reasoning"] == "off"} == {ANSWER}
    assert made.rows == 4 and not made.rejected.rows
    assert made.provenance["reasoning_wire"] == {"r1": {shape: 2}}


def test_per_request_switch_and_per_model_settings_from_the_teachers_rules(store, gsm8k):
    """A DeepSeek-V3.1-like server: thinking only when chat_template_kwargs says so, the
    reasoning in reasoning_content; the rules give that model its wire settings and price."""
    with FakeOpenAIServer(server_shape("reasoning_content")) as server:
        config = SftConfig(limit=2, reasoning_format="native", teacher=teacher(server.url),
                           teachers=[{"mode": "on", "model": "r1",
                                      "thinking_switch": "chat_template_kwargs",
                                      "thinking_key": "thinking",
                                      "reasoning_field": "reasoning_content",
                                      "price_input_per_m": 1.0, "price_output_per_m": 4.0},
                                     {"mode": "off", "model": "r1"}])
        made = generate_sft(store, gsm8k, "s", config, progress=False)
        sent = server.requests
    switches = sorted(r["chat_template_kwargs"]["thinking"] for r in sent)
    assert switches == [False, False, True, True]          # OFF requests send thinking: false
    assert {r["output"] for r in rows_of(store, made) if r["reasoning"] == "on"} == {CANONICAL}
    usage = made.provenance["usage_by_teacher"]["r1"]
    assert usage["requests"] == 4 and usage["prompt_tokens"] == 44
    assert usage["cost_usd"] == pytest.approx((44 * 1.0 + 28 * 4.0) / 1e6)
    assert made.provenance["cost_usd"] == usage["cost_usd"]
    # wire settings are keyed (they change what is sent); the price is not
    assert made.step.config["teachers"][0]["thinking_switch"] == "chat_template_kwargs"
    assert "price_input_per_m" not in made.step.config["teachers"][0]


def test_a_rule_with_its_own_server_sends_there_and_nowhere_else():
    config = SftConfig(teacher={"backend": "openai", "base_url": "http://a/v1",
                                "endpoints": ["http://b/v1"], "model": "m"},
                       teachers=[{"mode": "on", "model": "r1", "base_url": "http://r1/v1"}])
    assert config.teacher_for("r1").endpoint_urls() == ["http://r1/v1"]
    assert config.teacher_for("m").endpoint_urls() == ["http://a/v1", "http://b/v1"]


def test_rules_that_disagree_on_a_model_setting_are_a_config_error():
    with pytest.raises(ValueError, match="disagree on thinking_key"):
        SftConfig(teachers=[{"mode": "on", "model": "r1", "thinking_key": "thinking"},
                            {"mode": "off", "model": "r1", "thinking_key": "enable_thinking"}])


@pytest.mark.parametrize("message", [
    {"reasoning": "2 + 40 is"},                       # a parser's split: reasoning, no content
    {"content": "<think>2 + 40 is"},                  # inline, never closed
    {"content": "2 + 40 is"},                         # pre-filled <think>, never closed
])
def test_reasoning_that_never_closes_is_rejected_as_truncated(store, gsm8k, message):
    def reply(body):
        return (message, "length") if thinking_on(body) else ({"content": ANSWER}, "stop")

    with FakeOpenAIServer(reply) as server:
        made = generate_sft(store, gsm8k, "s", SftConfig(
            limit=2, reasoning_format="native",
            teacher=teacher(server.url, think_prefilled=True)), progress=False)
    assert made.rejected.by_reason == {"truncated:reasoning_not_closed": 2}
    assert {r["reasoning"] for r in rows_of(store, made)} == {"off"}   # no ON row stored


def test_batch_lines_carry_the_switch_and_batch_results_read_the_reasoning_field():
    from thinkforge.generators.backends import Sampling
    from thinkforge.generators.batch import batch_line, completion_from_line
    from thinkforge.generators.config import BackendConfig
    from thinkforge.generators.engine import Plan

    plan = Plan("k", {"id": "p"}, "off", 0, "r1", [{"role": "user", "content": "q"}],
                Sampling(0.0, 1.0, 16, 1))
    switched = BackendConfig(thinking_switch="chat_template_kwargs", thinking_key="thinking")
    assert batch_line(plan, switched)["body"]["chat_template_kwargs"] == {"thinking": False}
    assert "chat_template_kwargs" not in batch_line(plan, BackendConfig())["body"]
    done = completion_from_line({"custom_id": "k", "response": {"status_code": 200, "body": {
        "choices": [{"finish_reason": "stop", "message": {
            "role": "assistant", "reasoning_content": REASONING, "content": ANSWER}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4}}}})
    assert done.text == CANONICAL and done.extra["wire"] == "reasoning_content"
