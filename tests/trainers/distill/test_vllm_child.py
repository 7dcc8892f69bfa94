"""vLLM's ``nemotron-nas`` model serves a distilled child with transformers' greedy tokens.

Slow, and it needs vLLM: its own environment (``make vllm-env`` builds ``.venv-vllm``; or
``THINKFORGE_VLLM_PYTHON`` names a python with vllm); without it the test skips with that
reason. ``make test-vllm`` (the vLLM step of .ci/run) runs it.

The child is built by the exporter from a 6-layer random Llama whose shapes vLLM's CPU
kernels take (head_dim 64, FFN widths multiples of 256) and has every kind of block the
search and fusion make: attention kept with the parent's KV heads and with fewer (so
per-layer KV heads differ), attention removed, an FFN-fused block (widths 256 + 512 -> 768,
written as ``ffn_mult``), FFN removed, and a layer with neither.  vLLM loads it with
``trust_remote_code=True`` (float32, eager) and generates greedily from token ids;
transformers (the bundled remote code) runs the same greedy loop.  In float32 the tokens are
the same; the only allowed difference is at a step where transformers' top two tokens are
tied to within 1e-4 nats (random weights give flat distributions), after which the
sequences may part.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.vllm_env import VLLM_ENV, vllm_python

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow
MAX_TOKENS = 12
TIE = 1e-4



def build_vllm_child(root: Path):
    """(child dir, tokenizer, variants) of a child with every block kind, via the exporter."""
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.child import build_child, save_child
    from thinkforge.trainers.distill.pipeline import load_parent

    from tests.trainers.distill.tiny_parent import build_tiny_parent

    parent_dir = build_tiny_parent(root, layers=6, hidden=256, intermediate=512, heads=4,
                                   kv_heads=2)
    tokenizer, parent = load_parent(str(parent_dir))
    shape = B.Shape.of(parent.config)
    V = B.Variant  # noqa: N806
    variants = [V(2, 512), V(1, 256), V(0, 256), V(0, 512), V(2, 0), V(0, 0)]
    assert all(v in B.library(shape) for v in variants)
    child, _, layer_map = build_child(parent, shape, variants, fuse=[[2, 3]])
    assert layer_map == [[0], [1], [2, 3], [4], [5]]
    return save_child(child, root / "child", tokenizer), tokenizer, variants


def transformers_greedy(model_dir: Path, prompts: list[list[int]]):
    """Greedy tokens, their log-probs and the top-1 / top-2 gap at every step."""
    import torch
    from thinkforge.trainers.distill.child import load_child

    model = load_child(model_dir)
    results = []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            tokens, logprobs, gaps = [], [], []
            for _ in range(MAX_TOKENS):
                logp = torch.log_softmax(model(input_ids=ids, use_cache=False).logits[0, -1], -1)
                top = logp.topk(2)
                tokens.append(int(top.indices[0]))
                logprobs.append(float(top.values[0]))
                gaps.append(float(top.values[0] - top.values[1]))
                ids = torch.cat([ids, top.indices[:1].view(1, 1)], dim=1)
            results.append((tokens, logprobs, gaps))
    return results


def test_vllm_loads_the_child_and_matches_transformers_greedy(tmp_path):
    python = vllm_python()
    pytest.importorskip("transformers")
    from thinkforge.trainers.distill import blocks as B

    child_dir, tokenizer, variants = build_vllm_child(tmp_path)
    config = json.loads((child_dir / "config.json").read_text())
    assert config["model_type"] == "nemotron-nas"
    assert B.vllm_loadable(B.Shape(256, 4, 2, 64, 512, 6, 1, True), variants)
    texts = ["Natalia sold clips to 48 of her friends in April,",
             "The answer is", "def fibonacci(n):\n    ", "Paris is the capital of"]
    prompts = [tokenizer(t)["input_ids"] for t in texts]
    spec = tmp_path / "prompts.json"
    spec.write_text(json.dumps({"prompts": prompts, "max_tokens": MAX_TOKENS}))
    out = tmp_path / "vllm.json"
    run = subprocess.run(
        [str(python), str(Path(__file__).with_name("vllm_generate.py")), str(child_dir),
         str(spec), str(out)],
        capture_output=True, text=True, timeout=900, env={**os.environ, **VLLM_ENV})
    assert run.returncode == 0, run.stderr[-4000:]
    served = json.loads(out.read_text())
    assert served["architectures"] == ["DeciLMForCausalLM"]

    for prompt, (hf_tokens, hf_logprobs, gaps), vllm_tokens, vllm_logprobs in zip(
            prompts, transformers_greedy(child_dir, prompts), served["tokens"],
            served["logprobs"], strict=True):
        same = next((k for k, (a, b) in enumerate(zip(hf_tokens, vllm_tokens, strict=True)) if a != b),
                    MAX_TOKENS)
        if same < MAX_TOKENS:  # only a tie may part them
            assert gaps[same] < TIE, (prompt, same, hf_tokens, vllm_tokens, gaps)
        assert len(vllm_tokens) == MAX_TOKENS
        print(f"prompt of {len(prompt)} tokens: {same}/{MAX_TOKENS} greedy tokens identical")
        for k in range(same):
            assert vllm_logprobs[k] == pytest.approx(hf_logprobs[k], abs=1e-3), (prompt, k)
