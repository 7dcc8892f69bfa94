"""Slow (make test-vllm): a real vLLM OpenAI server with a reasoning parser (issue 23 item 2).

The model is built in the test (tiny_model.build_reasoning_model): its tokenizer has
<think> / </think>, its chat template pre-fills <think> when the request says
``chat_template_kwargs: {thinking: true}`` (DeepSeek-V3.1's switch) and </think> otherwise,
and it writes "Two plus two</think>Final answer: 4".  vLLM's ``deepseek_v3`` parser (the
DeepSeek-R1 parser when thinking, identity otherwise) splits the ON reply into
``message.reasoning`` and ``content``: the way real reasoning servers answer.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from thinkforge.generators.sft import SftConfig, generate_sft

from tests.generators.tiny_model import build_reasoning_model
from tests.vllm_env import vllm_server

pytestmark = pytest.mark.slow
SERVED = "r1-tiny"


def rows_of(store, manifest):
    return [r for p in store.shard_paths(manifest) for r in pq.read_table(p).to_pylist()]


def test_vllm_reasoning_parser_replies_become_canonical_rows(store, gsm8k, tmp_path):
    import openai

    model = build_reasoning_model(tmp_path / "model")
    teacher = {"backend": "openai", "model": SERVED, "concurrency": 2, "max_retries": 2,
               "request_timeout_s": 60, "thinking_switch": "chat_template_kwargs",
               "thinking_key": "thinking"}
    with vllm_server(model, SERVED, tmp_path / "server.log", "--reasoning-parser", "deepseek_v3",
                     max_model_len=512) as url:
        raw = openai.OpenAI(base_url=url, api_key="x").chat.completions.create(
            model=SERVED, messages=[{"role": "user", "content": "2 + 2?"}], max_tokens=32,
            temperature=0, extra_body={"chat_template_kwargs": {"thinking": True}})
        message = raw.choices[0].message
        # the reply really arrives split by vLLM's parser (no <think> in the content)
        split = getattr(message, "reasoning", None) or getattr(message, "reasoning_content", None)
        assert split.strip() == "Two plus two" and message.content.strip() == "Final answer: 4"
        made = generate_sft(store, gsm8k, "s", SftConfig(
            limit=3, reasoning_format="native", teacher={**teacher, "base_url": url},
            sampling_on={"max_new_tokens": 32}, sampling_off={"max_new_tokens": 32}),
            progress=False)
        cut = generate_sft(store, gsm8k, "cut", SftConfig(
            limit=3, reasoning_format="native", teacher={**teacher, "base_url": url},
            sampling_on={"max_new_tokens": 3}, sampling_off={"max_new_tokens": 32}),
            progress=False)
    rows = rows_of(store, made)
    assert {r["output"] for r in rows if r["reasoning"] == "on"} == {
        "<think>\nTwo plus two\n</think>\n\nFinal answer: 4"}
    assert {r["output"] for r in rows if r["reasoning"] == "off"} == {"Final answer: 4"}
    assert made.rows == 6 and made.provenance["reasoning_wire"] == {SERVED: {"reasoning": 3}}
    # a budget that ends inside the reasoning: vLLM sends it all as reasoning, no content
    assert cut.rejected.by_reason == {"truncated:reasoning_not_closed": 3}
    assert {r["reasoning"] for r in rows_of(store, cut)} == {"off"}
