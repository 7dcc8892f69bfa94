"""The block library: what each layer of the parent may become, and what it costs.

A variant is (KV heads, FFN width): ``kv_heads = 0`` is attention removed (no-op), fewer KV
heads than the parent are made by averaging the parent's K/V heads of each new group (the
Puzzle initialisation); ``ffn_width = 0`` is the FFN removed, smaller widths keep the
channels with the largest contribution ``mean |activation| x ||down_proj column||`` over the
calibration tokens (NVIDIA Model Optimizer's ``IndependentChannelContributionHook``).

Widths are the parent's width times 100/75/50/25 %, rounded to a multiple of ``align``:
256 when the parent's width is a multiple of 256, because the DeciLM format (the public
Nemotron checkpoints, vLLM's ``nemotron-nas``) stores ``ffn_mult`` and rounds the width up to
a multiple of 256, so only such widths load there; otherwise 1 (the width is also written
as ``intermediate_size``, which the bundled modeling code honours).

Costs: parameters of the block (its weights and norms), KV-cache bytes per token
(``2 x kv_heads x head_dim x kv_dtype_bytes``, bf16 = 2 by default) and the measured CPU
time of one block forward (it depends only on the variant's shapes, so it is measured once
per variant, not per layer).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

FFN_FRACTIONS = (1.0, 0.75, 0.5, 0.25)


@dataclass(frozen=True, order=True)
class Variant:
    kv_heads: int    # 0 = attention removed
    ffn_width: int   # 0 = FFN removed

    @property
    def key(self) -> str:
        attn = "attn-noop" if self.kv_heads == 0 else f"kv{self.kv_heads}"
        ffn = "ffn-noop" if self.ffn_width == 0 else f"ffn{self.ffn_width}"
        return f"{attn}/{ffn}"

    @classmethod
    def from_key(cls, key: str) -> Variant:
        attn, ffn = key.split("/")
        return cls(0 if attn == "attn-noop" else int(attn[2:]),
                   0 if ffn == "ffn-noop" else int(ffn[3:]))


@dataclass(frozen=True)
class Shape:
    """What the costs depend on, read from a Llama-family config."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    layers: int
    vocab: int
    tied: bool
    attention_bias: bool = False
    mlp_bias: bool = False

    @classmethod
    def of(cls, config) -> Shape:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(config.hidden_size, config.num_attention_heads,
                   config.num_key_value_heads or config.num_attention_heads, head_dim,
                   config.intermediate_size, config.num_hidden_layers, config.vocab_size,
                   bool(getattr(config, "tie_word_embeddings", False)),
                   bool(getattr(config, "attention_bias", False)),
                   bool(getattr(config, "mlp_bias", False)))

    @property
    def parent_variant(self) -> Variant:
        return Variant(self.kv_heads, self.intermediate)

    def fixed_params(self) -> int:
        """Embeddings, final norm and (untied) LM head: what no variant changes."""
        emb = self.vocab * self.hidden
        return emb + self.hidden + (0 if self.tied else emb)


def default_align(intermediate: int) -> int:
    return 256 if intermediate % 256 == 0 else 1


def ffn_widths(intermediate: int, align: int | None = None,
               fractions=FFN_FRACTIONS) -> list[int]:
    align = align or default_align(intermediate)
    out = []
    for f in fractions:
        w = max(align, int(intermediate * f / align + 0.5) * align)  # half rounds up
        if w not in out and w <= intermediate:
            out.append(w)
    return out


def kv_options(shape: Shape) -> list[int]:
    """The parent's KV heads and every smaller count that groups them evenly."""
    return [k for k in range(shape.kv_heads, 0, -1)
            if shape.kv_heads % k == 0 and shape.heads % k == 0]


def library(shape: Shape, *, align: int | None = None, attention_removal: bool = True,
            kv_reduction: bool = True, ffn_removal: bool = True) -> list[Variant]:
    kvs = kv_options(shape) if kv_reduction else [shape.kv_heads]
    if attention_removal:
        kvs = kvs + [0]
    widths = ffn_widths(shape.intermediate, align) + ([0] if ffn_removal else [])
    return [Variant(k, w) for k in kvs for w in widths]


def attention_params(shape: Shape, kv_heads: int) -> int:
    if kv_heads == 0:
        return 0
    q_o = 2 * shape.hidden * shape.heads * shape.head_dim
    k_v = 2 * shape.hidden * kv_heads * shape.head_dim
    bias = (shape.heads * shape.head_dim + 2 * kv_heads * shape.head_dim
            + shape.hidden) if shape.attention_bias else 0
    return q_o + k_v + bias + shape.hidden  # + input_layernorm


def ffn_params(shape: Shape, width: int) -> int:
    if width == 0:
        return 0
    bias = (2 * width + shape.hidden) if shape.mlp_bias else 0
    return 3 * shape.hidden * width + bias + shape.hidden  # + post_attention_layernorm


def block_params(shape: Shape, v: Variant) -> int:
    return attention_params(shape, v.kv_heads) + ffn_params(shape, v.ffn_width)


def kv_bytes_per_token(shape: Shape, v: Variant, dtype_bytes: int = 2) -> int:
    return 2 * v.kv_heads * shape.head_dim * dtype_bytes


def model_params(shape: Shape, variants: list[Variant]) -> int:
    return shape.fixed_params() + sum(block_params(shape, v) for v in variants)


def block_config(shape: Shape, v: Variant) -> dict:
    """The DeciLM ``block_configs`` entry of a variant."""
    attention = {"no_op": v.kv_heads == 0, "replace_with_linear": False,
                 "n_heads_in_group": None if v.kv_heads == 0 else shape.heads // v.kv_heads}
    ffn = {"no_op": v.ffn_width == 0, "replace_with_linear": False,
           "ffn_mult": None if v.ffn_width == 0 else ffn_mult(v.ffn_width, shape.hidden),
           "intermediate_size": None if v.ffn_width == 0 else v.ffn_width}
    return {"attention": attention, "ffn": ffn}


def ffn_mult(width: int, hidden: int) -> float:
    """A multiplier the DeciLM rule maps back to ``width`` when ``width`` is a multiple of 256."""
    from .decilm.configuration_decilm import ffn_mult_to_intermediate_size

    mult = round(1.5 * width / hidden, 6)
    if width % 256 == 0:
        for nudge in (0.0, 1e-6, 2e-6, -1e-6):
            if ffn_mult_to_intermediate_size(mult + nudge, hidden) == width:
                return round(mult + nudge, 7)
    return mult


def allowed(layer: int, v: Variant) -> bool:
    """Whether the search may put ``v`` at ``layer``: the first layer keeps its attention.

    vLLM's ``nemotron-nas`` model threads a residual through fused add + RMSNorm calls and
    starts it in the first layer's attention; a child whose first layer has no attention
    but an FFN fails there (``too many values to unpack``, vLLM 0.32). The public Nemotron
    checkpoints never remove it either, so the search never offers that variant.
    """
    return layer > 0 or v.kv_heads > 0


def vllm_loadable(shape: Shape, variants: list[Variant]) -> bool:
    """FFN widths vLLM derives from ``ffn_mult`` (multiples of 256) and attention in layer 0."""
    return (all(v.ffn_width % 256 == 0 for v in variants)
            and all(allowed(i, v) for i, v in enumerate(variants)))


# ---------------------------------------------------------------- importance and weights


def ffn_channel_scores(model, batches, on_output=None) -> list:
    """Per layer, one score per FFN channel (modelopt's channel-contribution hook on down_proj).

    ``on_output(output)`` receives each batch's forward output, with hidden states (block
    scoring keeps them from this same pass: ``scoring.ParentStates``)."""
    import torch
    from thinkforge.manifests.errors import require

    hook_cls = require("modelopt.torch.prune.importance_hooks", "distill")
    IndependentChannelContributionHook = hook_cls.IndependentChannelContributionHook  # noqa: N806
    hooks, handles = [], []
    for layer in model.model.layers:
        hook = IndependentChannelContributionHook(layer.mlp.down_proj)
        hooks.append(hook)
        handles.append(layer.mlp.down_proj.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for ids in batches:
                out = model(input_ids=ids, use_cache=False,
                            output_hidden_states=on_output is not None)
                if on_output is not None:
                    on_output(out)
    finally:
        for h in handles:
            h.remove()
    return [h.accumulate() for h in hooks]


def make_block(parent_layer, parent_config, shape: Shape, v: Variant, scores=None):
    """A DeciLM decoder layer for ``v``, with weights sliced / pooled from ``parent_layer``."""
    import torch

    from .decilm.configuration_decilm import DeciLMConfig
    from .decilm.modeling_decilm import DeciLMDecoderLayer

    cfg = child_config(parent_config, [block_config(shape, v)], DeciLMConfig)
    weight = next(parent_layer.parameters())
    with torch.device("meta"):       # every weight is copied below: no random init to pay for
        layer = DeciLMDecoderLayer(cfg, 0)
    layer.to_empty(device=weight.device).to(weight.dtype)
    with torch.no_grad():
        if v.kv_heads:
            src, dst = parent_layer.self_attn, layer.self_attn
            layer.input_layernorm.weight.copy_(parent_layer.input_layernorm.weight)
            dst.q_proj.load_state_dict(src.q_proj.state_dict())
            dst.o_proj.load_state_dict(src.o_proj.state_dict())
            for name in ("k_proj", "v_proj"):
                dst_lin, src_lin = getattr(dst, name), getattr(src, name)
                group = shape.kv_heads // v.kv_heads
                w = src_lin.weight.view(v.kv_heads, group, shape.head_dim, shape.hidden)
                dst_lin.weight.copy_(w.mean(1).reshape(-1, shape.hidden))
                if src_lin.bias is not None:
                    b = src_lin.bias.view(v.kv_heads, group, shape.head_dim)
                    dst_lin.bias.copy_(b.mean(1).reshape(-1))
        if v.ffn_width:
            src, dst = parent_layer.mlp, layer.mlp
            layer.post_attention_layernorm.weight.copy_(parent_layer.post_attention_layernorm.weight)
            if v.ffn_width == shape.intermediate or scores is None:
                keep = torch.arange(v.ffn_width)
            else:
                keep = torch.topk(scores.float(), v.ffn_width).indices.sort().values
                keep = keep.to(src.gate_proj.weight.device)
            dst.gate_proj.weight.copy_(src.gate_proj.weight[keep])
            dst.up_proj.weight.copy_(src.up_proj.weight[keep])
            dst.down_proj.weight.copy_(src.down_proj.weight[:, keep])
            if src.down_proj.bias is not None:
                dst.gate_proj.bias.copy_(src.gate_proj.bias[keep])
                dst.up_proj.bias.copy_(src.up_proj.bias[keep])
                dst.down_proj.bias.copy_(src.down_proj.bias)
    return layer


def child_config(parent_config, block_configs: list[dict], config_cls=None):
    """A DeciLM config: the parent's Llama fields plus ``block_configs``."""
    if config_cls is None:
        from .decilm.configuration_decilm import DeciLMConfig as config_cls
    fields = parent_config.to_dict()
    for k in ("architectures", "model_type", "auto_map", "transformers_version",
              "block_configs", "_name_or_path", "dtype", "torch_dtype"):
        fields.pop(k, None)
    fields["num_hidden_layers"] = len(block_configs)
    cfg = config_cls(**fields, block_configs=block_configs)
    cfg._attn_implementation = getattr(parent_config, "_attn_implementation", None) or "sdpa"
    return cfg


# ---------------------------------------------------------------- measured block time


def time_variants(parent_model, shape: Shape, variants: list[Variant], *, tokens: int = 64,
                  repeats: int = 5) -> dict[str, float]:
    """Milliseconds per block forward on ``tokens`` tokens (median of ``repeats``), per
    variant, on the parent's device and dtype (where the child will run: a GPU's timing
    differs from a CPU's in kind, attention being relatively cheaper there)."""
    import torch
    from thinkforge.generators.backends.placement import synchronize

    layer0 = parent_model.model.layers[0]
    rotary = parent_model.model.rotary_emb
    weight = next(layer0.parameters())
    torch.manual_seed(0)
    if weight.device.type == "cuda":
        tokens *= 32  # a GPU needs work enough to be timed (a 64-token block is launch-bound)
    h = torch.randn(1, tokens, shape.hidden, dtype=weight.dtype, device=weight.device)
    pos = torch.arange(tokens, device=weight.device).unsqueeze(0)
    cos_sin = rotary(h, pos)
    out: dict[str, float] = {}
    with torch.no_grad():
        for v in variants:
            block = make_block(layer0, parent_model.config, shape, v).eval()
            runs = []
            for _ in range(repeats + 1):
                synchronize(str(weight.device))
                t0 = time.perf_counter()
                block(h, position_embeddings=cos_sin, position_ids=pos)
                synchronize(str(weight.device))
                runs.append(time.perf_counter() - t0)
            runs = sorted(runs[1:])
            out[v.key] = round(1000 * runs[len(runs) // 2], 4)
    return out


def describe(shape: Shape, v: Variant, dtype_bytes: int = 2) -> dict:
    return {"variant": v.key, **asdict(v), "params": block_params(shape, v),
            "kv_bytes_per_token": kv_bytes_per_token(shape, v, dtype_bytes)}
