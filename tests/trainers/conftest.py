"""Fixtures of the trainer tests: a tiny local model and tiny sft / rl_pool / preferences versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.generators.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer (built once per session)."""
    pytest.importorskip("trl")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def sft_rows(n: int = 8) -> list[dict]:
    rows = []
    for i in range(n):
        mode = "on" if i % 2 == 0 else "off"
        answer = str(2 * i)
        rows.append({
            "id": f"s{i}", "prompt_id": f"p{i // 2}", "pair_id": f"p{i // 2}", "category": "math",
            "reasoning": mode, "system_prompt": f"detailed thinking {mode}",
            "input": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "output": f"<think>{i} plus {i}</think>\n\n{answer}" if mode == "on" else answer,
            "generator": "scripted", "ground_truth": answer, "verified": True, "answer": answer})
    return rows


@pytest.fixture
def sft_version(store):
    with store.writer("toy-sft", "sft", step={"type": "test"}) as w:
        w.write(sft_rows())
    return w.manifest


def pool_rows(n: int = 8, batch_size: int = 2) -> list[dict]:
    """Prompts whose curriculum order differs from their id order and storage order."""
    rows = []
    for i in range(n):
        position = (i * 5) % n            # a permutation of 0..n-1
        rows.append({
            "id": f"q{i:02d}", "source": "toy", "category": "math",
            "input": [{"role": "user", "content": f"Compute {i} * 3."}],
            "ground_truth": str(3 * i), "verifier": "math", "n_samples": 4, "n_correct": i % 4,
            "pass_rate": (i % 4) / 4, "bucket": "medium",
            "curriculum_batch": position // batch_size, "curriculum_position": position})
    return rows


@pytest.fixture
def pool_version(store):
    with store.writer("toy-pool", "rl_pool",
                      step={"type": "filter.curriculum", "config": {"batch_size": 2}}) as w:
        w.write(pool_rows())
    return w.manifest


@pytest.fixture
def prefs_version(store):
    rows = [{"prompt_id": f"p{i}", "input": [{"role": "user", "content": f"What is {i} + 1?"}],
             "chosen": f"<think>add one</think>\n\n{i + 1}", "rejected": f"{i + 7} maybe",
             "chosen_score": 1.1, "rejected_score": 0.0} for i in range(6)]
    with store.writer("toy-prefs", "preferences", step={"type": "test"},
                      provenance={"modes": ["on"]}) as w:
        w.write(rows)
    return w.manifest


def weights_changed(base: Path, trained: Path) -> bool:
    """Any parameter present in both folders differs."""
    from safetensors.torch import load_file

    a = load_file(str(next(Path(base).glob("*.safetensors"))))
    b = load_file(str(next(Path(trained).glob("*.safetensors"))))
    common = [k for k in a if k in b and a[k].shape == b[k].shape]
    assert common, "no common parameters"
    return any(not (a[k] == b[k]).all() for k in common)


def same_logits(model, folder: Path, auto_class: str = "AutoModelForCausalLM") -> bool:
    """The saved folder reloads with bitwise the same weights and the same logits on a fixed
    input (to float rounding: after a run with gradient checkpointing the in-memory model's
    logits differed from the reloaded one's by 6e-8 with every weight equal)."""
    import torch
    import transformers

    reloaded = getattr(transformers, auto_class).from_pretrained(str(folder)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    batch = tokenizer(["detailed thinking on: what is 2 + 2?"], return_tensors="pt")
    model = model.eval().to("cpu")
    saved, trained = reloaded.state_dict(), model.state_dict()
    if set(saved) != set(trained) or any(not torch.equal(saved[k], trained[k]) for k in saved):
        return False
    with torch.no_grad():
        return torch.allclose(model(**batch).logits, reloaded(**batch).logits, rtol=0, atol=1e-5)
