"""DeciLM: a Llama whose layers differ (Puzzle children, FFN-fused blocks).

Per layer, from ``config.block_configs``: attention kept (with its own number of KV heads,
``num_attention_heads // n_heads_in_group``) or absent (``no_op``), FFN of its own width or
absent.  Weight names are Llama's; an absent sub-block has no weights and no norm.  Attention
layers are numbered among themselves for the KV cache, so the cache holds entries only for
layers that attend and ``get_seq_length()`` reads the first attending layer.
Linear replacements (``replace_with_linear``) are not produced by thinkforge and rejected.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaForCausalLM,
    LlamaMLP,
    LlamaModel,
    LlamaPreTrainedModel,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)

from .configuration_decilm import DeciLMConfig, block_intermediate_size


def _resize_attention(attn: LlamaAttention, config, num_kv_heads: int) -> None:
    head_dim = attn.head_dim
    bias = config.attention_bias
    attn.k_proj = nn.Linear(config.hidden_size, num_kv_heads * head_dim, bias=bias)
    attn.v_proj = nn.Linear(config.hidden_size, num_kv_heads * head_dim, bias=bias)
    attn.num_key_value_groups = config.num_attention_heads // num_kv_heads


def _resize_mlp(mlp: LlamaMLP, config, width: int) -> None:
    bias = config.mlp_bias
    mlp.intermediate_size = width
    mlp.gate_proj = nn.Linear(config.hidden_size, width, bias=bias)
    mlp.up_proj = nn.Linear(config.hidden_size, width, bias=bias)
    mlp.down_proj = nn.Linear(width, config.hidden_size, bias=bias)


class DeciLMDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: DeciLMConfig, layer_idx: int, cache_idx: int | None = None):
        super().__init__()
        block = config.block_configs[layer_idx]
        attention, ffn = block["attention"], block["ffn"]
        if attention.get("replace_with_linear") or ffn.get("replace_with_linear"):
            raise ValueError(f"layer {layer_idx}: linear replacements are not supported")
        self.hidden_size = config.hidden_size
        self.attention_no_op = bool(attention.get("no_op"))
        self.ffn_no_op = bool(ffn.get("no_op"))
        if not self.attention_no_op:
            num_kv = config.num_attention_heads // int(attention["n_heads_in_group"])
            self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
            self.self_attn = LlamaAttention(config=config,
                                            layer_idx=layer_idx if cache_idx is None else cache_idx)
            if num_kv != config.num_key_value_heads:
                _resize_attention(self.self_attn, config, num_kv)
        if not self.ffn_no_op:
            self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size,
                                                         eps=config.rms_norm_eps)
            self.mlp = LlamaMLP(config)
            width = block_intermediate_size(block, config.hidden_size)
            if width != config.intermediate_size:
                _resize_mlp(self.mlp, config, width)

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, position_ids=None,
                past_key_values=None, use_cache=False, position_embeddings=None, **kwargs):
        if not self.attention_no_op:
            residual = hidden_states
            hidden_states, _ = self.self_attn(
                hidden_states=self.input_layernorm(hidden_states), attention_mask=attention_mask,
                position_ids=position_ids, past_key_values=past_key_values, use_cache=use_cache,
                position_embeddings=position_embeddings, **kwargs)
            hidden_states = residual + hidden_states
        if not self.ffn_no_op:
            hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states


class DeciLMPreTrainedModel(LlamaPreTrainedModel):
    config_class = DeciLMConfig
    config: DeciLMConfig
    _no_split_modules = ["DeciLMDecoderLayer"]  # noqa: RUF012
    _can_record_outputs = {"hidden_states": DeciLMDecoderLayer, "attentions": LlamaAttention}  # noqa: RUF012


class DeciLMModel(DeciLMPreTrainedModel, LlamaModel):
    def __init__(self, config: DeciLMConfig):
        DeciLMPreTrainedModel.__init__(self, config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        layers, cache_idx = [], 0
        for i, block in enumerate(config.block_configs):
            layers.append(DeciLMDecoderLayer(config, i, cache_idx))
            cache_idx += 0 if block["attention"].get("no_op") else 1
        self.layers = nn.ModuleList(layers)
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    forward = LlamaModel.forward


class DeciLMForCausalLM(DeciLMPreTrainedModel, LlamaForCausalLM):
    def __init__(self, config: DeciLMConfig):
        DeciLMPreTrainedModel.__init__(self, config)
        self.model = DeciLMModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    forward = LlamaForCausalLM.forward


__all__ = ["DeciLMForCausalLM", "DeciLMModel", "DeciLMPreTrainedModel"]
