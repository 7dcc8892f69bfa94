"""A tiny 4-layer random Llama with SmolLM2's tokenizer: the distillation tests' parent."""

from __future__ import annotations

from pathlib import Path


def build_tiny_parent(target: Path, *, layers: int = 4, hidden: int = 64,
                      intermediate: int = 128, heads: int = 4, kv_heads: int = 2) -> Path:
    import torch
    import transformers

    from tests.generators.tiny_model import build_tiny_model

    tok_dir = build_tiny_model(target / "tokenizer-source")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tok_dir)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True, initializer_range=0.08)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():  # norms away from 1 so folding them into the FFN is really tested
        for layer in model.model.layers:
            layer.post_attention_layernorm.weight.uniform_(0.5, 1.5)
            layer.input_layernorm.weight.uniform_(0.5, 1.5)
    out = target / "parent"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
