"""Small synthetic versions of each kind, and the SmolLM2 tokenizer, shared by the export,
report and recipe tests (no test functions here; the module name keeps it in this area)."""

from __future__ import annotations

from thinkforge.manifests import DatasetStore, Manifest

QUESTIONS = ["What is 2 + 3?", "What is 7 * 6?", "What is 10 - 4?", "What is 9 / 3?",
             "What is 5 + 5?", "What is 8 * 2?"]
ANSWERS = ["5", "42", "6", "3", "10", "16"]


def make_prompts(store: DatasetStore, name: str = "toy") -> Manifest:
    rows = [{"id": f"p{i}", "source": "gsm8k", "category": "math",
             "input": [{"role": "user", "content": q}], "ground_truth": a, "verifier": "math",
             "license": "MIT"} for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS, strict=True))]
    with store.writer(name, "prompts", step={"type": "import", "config": {"test": True}}) as w:
        w.write(rows)
    return w.manifest


def make_sft(store: DatasetStore, prompts: Manifest, name: str = "toy-sft") -> Manifest:
    rows = []
    for i, (q, a) in enumerate(zip(QUESTIONS[:3], ANSWERS[:3], strict=True)):
        for mode in ("on", "off"):
            output = f"<think>compute {q}</think>\n\nThe answer is {a}." if mode == "on" \
                else f"The answer is {a}."
            rows.append({"id": f"s{i}-{mode}", "prompt_id": f"p{i}", "pair_id": f"pair{i}",
                         "category": "math", "reasoning": mode,
                         "system_prompt": f"detailed thinking {mode}",
                         "input": [{"role": "user", "content": q}], "output": output,
                         "generator": "smollm2-135m", "license": "MIT", "ground_truth": a,
                         "verified": i != 2, "answer": a, "output_tokens": len(output) // 3,
                         "finish_reason": "stop"})
    with store.writer(name, "sft", step={"type": "generate-sft", "config": {"n": 3}},
                      parents=[prompts]) as w:
        w.write(rows)
        w.reject([{"id": "s9-on", "detail": "no think block"}], reason="format")
    return w.manifest


def make_rollouts(store: DatasetStore, prompts: Manifest, name: str = "toy-rollouts") -> Manifest:
    rows = [{"prompt_id": f"p{i}", "sample": k, "generator": "smollm2-135m", "reasoning": "on",
             "output": f"<think>x</think> {k}", "answer": str(k), "correct": k < i % 4,
             "format_ok": True, "reward": float(k < i % 4), "output_tokens": 10 + k,
             "finish_reason": "stop"} for i in range(len(QUESTIONS)) for k in range(4)]
    with store.writer(name, "rollouts", step={"type": "generate-rollouts", "config": {"k": 4}},
                      parents=[prompts], provenance={"model": "smollm2-135m"}) as w:
        w.write(rows)
    return w.manifest


def make_rl_pool(store: DatasetStore, rollouts: Manifest, name: str = "toy-pool") -> Manifest:
    """Six prompts in two curriculum batches, stored in an order that is NOT curriculum order."""
    order = [(1, 2), (0, 1), (1, 0), (0, 0), (1, 1), (0, 2)]  # (batch, position) per stored row
    rows = []
    for i, (batch, position) in enumerate(order):
        n_correct = i % 4
        rows.append({"id": f"p{i}", "source": "gsm8k", "category": "math",
                     "input": [{"role": "user", "content": QUESTIONS[i]}],
                     "ground_truth": ANSWERS[i], "verifier": "math", "license": "MIT",
                     "n_samples": 4, "n_correct": n_correct, "pass_rate": n_correct / 4,
                     "bucket": ["unsolved", "hard", "medium", "easy"][n_correct],
                     "curriculum_batch": batch, "curriculum_position": position})
    with store.writer(name, "rl_pool", step={"type": "curriculum", "config": {"batch_size": 3}},
                      parents=[rollouts]) as w:
        w.write(rows)
        w.reject([{"id": "p9", "pass_rate": 1.0}], reason="too_easy")
    return w.manifest


def make_preferences(store: DatasetStore, name: str = "toy-prefs") -> Manifest:
    rows = [{"prompt_id": f"p{i}", "input": [{"role": "user", "content": q}],
             "chosen": f"The answer is {a}.", "rejected": "I do not know.",
             "chosen_score": 1.0, "rejected_score": 0.0}
            for i, (q, a) in enumerate(zip(QUESTIONS[:4], ANSWERS[:4], strict=True))]
    with store.writer(name, "preferences", step={"type": "generate-preferences", "config": {}}) as w:
        w.write(rows)
    return w.manifest
