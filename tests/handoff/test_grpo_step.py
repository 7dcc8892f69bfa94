"""One real GRPO step in TRL on our trl-grpo export (issue 16 "done when"): prompts reach
the trainer in curriculum order, rewards come from our verifier, the weights change."""

from __future__ import annotations

import math

import pytest
from thinkforge.curation.export import export_version


@pytest.mark.slow
def test_one_grpo_step_on_our_export_keeps_curriculum_order(store, pool, tmp_path,
                                                            smollm2_tokenizer, capsys):
    pytest.importorskip("trl")
    import datasets
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from tests.curation.test_export_trl import tiny_model
    from thinkforge.integrations.verl import compute_score

    record = export_version(store, pool.ref, "trl-grpo", tmp_path / "grpo")
    assert any("shuffle_dataset=False" in n for n in record["trainer_notes"])
    data = datasets.load_dataset("parquet", data_files=str(tmp_path / "grpo" / "train.parquet"),
                                 split="train")
    seen: list[tuple[int, int]] = []

    def accuracy(completions, solution, verifier, curriculum_batch, curriculum_position,
                 **kwargs):
        seen.extend(zip(curriculum_batch, curriculum_position, strict=True))
        return [compute_score(None, c[0]["content"], s, {"verifier": v})
                for c, s, v in zip(completions, solution, verifier, strict=True)]

    def brevity(completions, **kwargs):  # a random tiny model is never right: some signal
        return [-len(c[0]["content"]) / 100 for c in completions]

    model = tiny_model(smollm2_tokenizer)
    before = [p.detach().clone() for p in model.parameters()]
    args = GRPOConfig(output_dir=str(tmp_path / "run"), use_cpu=True, report_to=[],
                      shuffle_dataset=False, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=8, max_steps=1, beta=0.0, learning_rate=1e-2,
                      temperature=1.0,
                      logging_steps=1)
    trainer = GRPOTrainer(model=model, reward_funcs=[accuracy, brevity], args=args, train_dataset=data,
                          processing_class=smollm2_tokenizer)
    result = trainer.train()
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    expected = [(r["curriculum_batch"], r["curriculum_position"]) for r in data][:len(seen) // 2]
    with capsys.disabled():
        print(f"\nTRL GRPO step: loss {result.training_loss:.4f}, prompts seen (batch, position) "
              f"{sorted(set(seen))}, weights changed {changed}")
    assert math.isfinite(result.training_loss) and changed
    assert [s for i, s in enumerate(seen) if i % 2 == 0] == expected  # curriculum order
