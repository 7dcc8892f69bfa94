"""The TRL exports go through TRL's own data utilities and trainer dataset preparation with
the SmolLM2 chat template, unchanged: what TRL sees is what thinkforge stored."""

from __future__ import annotations

import os
import tempfile

import pytest
from thinkforge.curation.export import export_version

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="tf-hf-cache-"))
datasets = pytest.importorskip("datasets")
trl_data = pytest.importorskip("trl.data_utils")


def load_train(out):
    return datasets.load_dataset(str(out))["train"]


def tiny_model(tokenizer):
    """A randomly initialised 1-layer Llama with SmolLM2's vocabulary: enough for a trainer to
    prepare (tokenize) a dataset, cheap to build."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=512)
    return LlamaForCausalLM(config)


def test_trl_sft_renders_with_the_smollm2_template(store, versions, tmp_path, smollm2_tokenizer):
    export_version(store, "toy-sft", "trl-sft", tmp_path / "sft")
    ds = load_train(tmp_path / "sft")
    assert trl_data.is_conversational(ds[0])
    text = trl_data.maybe_apply_chat_template(ds[0], smollm2_tokenizer)["text"]
    # the stored system turn replaces SmolLM2's default one
    assert text.startswith("<|im_start|>system\ndetailed thinking ")
    assert "You are a helpful AI assistant" not in text
    assert text.rstrip().endswith("<|im_end|>") and "<|im_start|>assistant\n" in text


def test_sft_trainer_prepares_both_sft_exports(store, versions, tmp_path, smollm2_tokenizer):
    from trl import SFTConfig, SFTTrainer

    export_version(store, "toy-sft", "trl-sft", tmp_path / "sft")
    export_version(store, "toy-sft", "trl-prompt-completion", tmp_path / "pc")
    for folder, answer_only in (("sft", False), ("pc", True)):
        args = SFTConfig(output_dir=str(tmp_path / f"run-{folder}"), report_to=[], max_steps=1,
                         use_cpu=True, max_length=256, dataset_num_proc=None)
        trainer = SFTTrainer(model=tiny_model(smollm2_tokenizer), args=args,
                             train_dataset=load_train(tmp_path / folder),
                             processing_class=smollm2_tokenizer)
        prepared = trainer.train_dataset
        assert len(prepared) == 6 and "input_ids" in prepared.column_names
        ids = prepared[0]["input_ids"]
        assert smollm2_tokenizer.decode(ids).startswith("<|im_start|>system\ndetailed thinking ")
        if answer_only:  # prompt-completion: TRL masks the prompt (-100) and trains on the answer
            labels = prepared[0]["labels"]
            trained = [t for t, label in zip(ids, labels, strict=True) if label != -100]
            assert 0 < len(trained) < len(ids)
            answer = smollm2_tokenizer.decode(trained)
            assert answer.startswith("<think>") and "The answer is 5." in answer
            assert "<|im_start|>user" not in answer and "detailed thinking" not in answer


def test_grpo_prompts_render_with_generation_prompt_in_curriculum_order(
        store, versions, tmp_path, smollm2_tokenizer):
    export_version(store, "toy-pool", "trl-grpo", tmp_path / "grpo")
    ds = load_train(tmp_path / "grpo")
    assert trl_data.is_conversational(ds[0])
    rendered = ds.map(trl_data.maybe_apply_chat_template,
                      fn_kwargs={"processing_class": smollm2_tokenizer})
    prompt = rendered[0]["prompt"]
    assert prompt.startswith("<|im_start|>system\ndetailed thinking on<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")
    # GRPO consumes rows in dataset order (the trainer is run without reshuffling)
    assert [(r["curriculum_batch"], r["curriculum_position"]) for r in rendered] == \
        [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    # reward functions receive the extra columns as keyword arguments
    assert rendered[0]["solution"] == rendered[0]["ground_truth"]


def test_dpo_pairs_render_and_extract(store, versions, tmp_path, smollm2_tokenizer):
    export_version(store, "toy-prefs", "trl-dpo", tmp_path / "dpo")
    ds = load_train(tmp_path / "dpo")
    assert trl_data.is_conversational(ds[0])
    row = trl_data.maybe_apply_chat_template(ds[0], smollm2_tokenizer)
    assert row["prompt"].endswith("<|im_start|>assistant\n")
    assert row["chosen"].startswith("The answer is 5.") and row["rejected"].startswith("I do not")
    export_version(store, "toy-prefs", "trl-dpo", tmp_path / "dpo-on", reasoning="on")
    with_system = trl_data.maybe_apply_chat_template(load_train(tmp_path / "dpo-on")[0],
                                                     smollm2_tokenizer)
    assert with_system["prompt"].startswith("<|im_start|>system\ndetailed thinking on")


def test_openrlhf_keys_render_like_openrlhf_does(store, versions, tmp_path, smollm2_tokenizer):
    """OpenRLHF (--apply_chat_template) renders data[input_key] with add_generation_prompt and
    takes data[label_key] as the label; for SFT it renders input + output and keeps the tail."""
    record = export_version(store, "toy-pool", "openrlhf", tmp_path / "orl")
    keys = dict(zip(record["openrlhf_args"].split()[2::2], record["openrlhf_args"].split()[3::2], strict=False))
    keys = {k.replace("--data.", "--"): v for k, v in keys.items()}  # OpenRLHF 0.11 groups
    row = load_train(tmp_path / "orl")[0]
    prompt = smollm2_tokenizer.apply_chat_template(row[keys["--input_key"]], tokenize=False,
                                                   add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\ndetailed thinking on")
    assert row[keys["--label_key"]] is not None
    export_version(store, "toy-sft", "openrlhf", tmp_path / "orl-sft")
    row = load_train(tmp_path / "orl-sft")[0]
    prompt = smollm2_tokenizer.apply_chat_template(row["input"], tokenize=False,
                                                   add_generation_prompt=True)
    full = smollm2_tokenizer.apply_chat_template(row["input"] + row["output"], tokenize=False)
    assert full.startswith(prompt) and "The answer is 5." in full[len(prompt):]


def test_grpo_trainer_feeds_prompts_in_curriculum_order(store, versions, tmp_path, smollm2_tokenizer):
    """GRPOTrainer with shuffle_dataset=False hands prompts to generation in export order."""
    from trl import GRPOConfig, GRPOTrainer

    export_version(store, "toy-pool", "trl-grpo", tmp_path / "grpo")

    def reward(completions, **kwargs):  # not called: the test only iterates the data
        return [0.0] * len(completions)

    args = GRPOConfig(output_dir=str(tmp_path / "run"), use_cpu=True, report_to=[],
                      shuffle_dataset=False, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, max_steps=1, beta=0.0)
    trainer = GRPOTrainer(model=tiny_model(smollm2_tokenizer), reward_funcs=[reward], args=args,
                          train_dataset=load_train(tmp_path / "grpo"),
                          processing_class=smollm2_tokenizer)
    order = [(x["curriculum_batch"], x["curriculum_position"])
             for batch in trainer.get_train_dataloader() for x in batch]
    # each prompt twice (num_generations), batches in curriculum order
    assert order == [(b, p) for b in (0, 1) for p in (0, 1, 2) for _ in range(2)]


def test_dpo_trainer_prepares_the_pairs(store, versions, tmp_path, smollm2_tokenizer):
    from trl import DPOConfig, DPOTrainer

    export_version(store, "toy-prefs", "trl-dpo", tmp_path / "dpo", reasoning="on")
    trainer = DPOTrainer(model=tiny_model(smollm2_tokenizer), ref_model=tiny_model(smollm2_tokenizer),
                         args=DPOConfig(output_dir=str(tmp_path / "run"), use_cpu=True,
                                        report_to=[], max_steps=1),
                         train_dataset=load_train(tmp_path / "dpo"),
                         processing_class=smollm2_tokenizer)
    row = trainer.train_dataset[0]
    decode = smollm2_tokenizer.decode
    assert decode(row["prompt_ids"]).startswith("<|im_start|>system\ndetailed thinking on<|im_end|>")
    assert decode(row["chosen_ids"]).startswith("The answer is 5.")
    assert decode(row["rejected_ids"]).startswith("I do not know.")
