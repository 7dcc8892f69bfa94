"""FFN Fusion (arXiv 2503.18908): a run of consecutive attention-free blocks becomes one FFN.

Sequentially, ``x1 = x0 + f1(n1(x0)); x2 = x1 + f2(n2(x1))``.  Fusion evaluates every FFN of
the run on the same input, ``x2' = x0 + f1(n1(x0)) + f2(n2(x0))``, which one wider FFN
computes exactly: each RMSNorm weight is folded into its FFN's gate/up columns
(``W diag(w)``), gate and up are concatenated along their output dimension and down along its
input dimension, and the fused block keeps a weightless (all-ones) RMSNorm.  The fused FFN
equals the sum of the separate FFNs on the same normalised input (tests check it to float
tolerance); what changes is the model's function (inputs no longer see the earlier FFNs'
outputs), which the report measures as the KL cost of the parallelisation.
"""

from __future__ import annotations

from .blocks import Variant


def fusable_runs(variants: list[Variant], min_length: int = 2) -> list[list[int]]:
    """Maximal runs of consecutive layers with attention removed and an FFN kept."""
    runs, current = [], []
    for i, v in enumerate(variants):
        if v.kv_heads == 0 and v.ffn_width > 0:
            current.append(i)
            continue
        if len(current) >= min_length:
            runs.append(current)
        current = []
    if len(current) >= min_length:
        runs.append(current)
    return runs


def fuse_ffns(blocks: list) -> tuple:
    """gate, up, down weights and the total width of the FFN equal to the blocks' sum."""
    import torch

    gates, ups, downs = [], [], []
    with torch.no_grad():
        for b in blocks:
            w = b.post_attention_layernorm.weight
            gates.append(b.mlp.gate_proj.weight * w[None, :])
            ups.append(b.mlp.up_proj.weight * w[None, :])
            downs.append(b.mlp.down_proj.weight)
        gate, up, down = torch.cat(gates, 0), torch.cat(ups, 0), torch.cat(downs, 1)
    return gate, up, down, gate.shape[0]


def fused_block(blocks: list, config, shape):
    """One attention-free DeciLM layer whose FFN is the fusion of ``blocks`` (DeciLM layers)."""
    import torch

    from .blocks import block_config, child_config
    from .decilm.modeling_decilm import DeciLMDecoderLayer

    if any(b.mlp.gate_proj.bias is not None for b in blocks):
        raise ValueError("FFN Fusion of FFNs with biases is not supported")
    gate, up, down, width = fuse_ffns(blocks)
    cfg = child_config(config, [block_config(shape, Variant(0, width))])
    layer = DeciLMDecoderLayer(cfg, 0).to(device=gate.device, dtype=gate.dtype)
    with torch.no_grad():
        layer.post_attention_layernorm.weight.fill_(1.0)
        layer.mlp.gate_proj.weight.copy_(gate)
        layer.mlp.up_proj.weight.copy_(up)
        layer.mlp.down_proj.weight.copy_(down)
    return layer, width
