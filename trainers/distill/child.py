"""The child: a DeciLM model assembled from the parent's weights, and its checkpoint.

``build_child`` slices every layer to its chosen variant (``blocks.make_block``), optionally
fuses attention-free runs (``fusion``), and loads the result into ``DeciLMForCausalLM`` (the
bundled ``decilm/`` modeling code).  ``save_child`` writes a checkpoint in the layout of the
public Nemotron Super/Ultra ones: ``config.json`` with ``architectures:
["DeciLMForCausalLM"]``, ``model_type: "nemotron-nas"``, per-layer ``block_configs`` and an
``auto_map`` naming ``configuration_decilm.py`` / ``modeling_decilm.py``, which are copied
next to the safetensors weights, so ``AutoModelForCausalLM.from_pretrained(dir,
trust_remote_code=True)`` loads it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .blocks import Shape, Variant, block_config, child_config, make_block

AUTO_MAP = {"AutoConfig": "configuration_decilm.DeciLMConfig",
            "AutoModelForCausalLM": "modeling_decilm.DeciLMForCausalLM"}
MODELING_FILES = ("configuration_decilm.py", "modeling_decilm.py")


def build_child(parent, shape: Shape, variants: list[Variant], channel_scores=None,
                fuse: list[list[int]] | None = None):
    """(child model, block configs, layer map) — layer map: child layer -> parent layers."""
    import torch

    from .decilm.modeling_decilm import DeciLMForCausalLM
    from .fusion import fused_block

    blocks = [make_block(parent.model.layers[i], parent.config, shape, v,
                         channel_scores[i] if channel_scores else None)
              for i, v in enumerate(variants)]
    fuse = fuse or []
    starts = {run[0]: run for run in fuse}
    inside = {i for run in fuse for i in run}
    layers, configs, layer_map = [], [], []
    i = 0
    while i < len(blocks):
        if i in starts:
            run = starts[i]
            layer, width = fused_block([blocks[j] for j in run], parent.config, shape)
            layers.append(layer)
            configs.append(block_config(shape, Variant(0, width)))
            layer_map.append(run)
            i = run[-1] + 1
            continue
        assert i not in inside
        layers.append(blocks[i])
        configs.append(block_config(shape, variants[i]))
        layer_map.append([i])
        i += 1
    cfg = child_config(parent.config, configs)
    cfg.architectures = ["DeciLMForCausalLM"]
    cfg.auto_map = dict(AUTO_MAP)
    weight = next(parent.parameters())
    child = DeciLMForCausalLM(cfg).to(device=weight.device, dtype=weight.dtype)
    state = {}
    for j, layer in enumerate(layers):
        for k, t in layer.state_dict().items():
            state[f"model.layers.{j}.{k}"] = t
    with torch.no_grad():
        state["model.embed_tokens.weight"] = parent.model.embed_tokens.weight
        state["model.norm.weight"] = parent.model.norm.weight
        state["lm_head.weight"] = parent.lm_head.weight
    missing, unexpected = child.load_state_dict(state, strict=False)
    missing = [k for k in missing if "rotary_emb" not in k]
    if missing or unexpected:
        raise RuntimeError(f"child weights do not match: missing {missing}, "
                           f"unexpected {unexpected}")
    if cfg.tie_word_embeddings:
        child.tie_weights()
    return child.eval(), configs, layer_map


def save_child(child, output_dir: Path, tokenizer=None) -> Path:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    child.config.auto_map = dict(AUTO_MAP)
    child.config.architectures = ["DeciLMForCausalLM"]
    child.save_pretrained(output_dir)
    _add_legacy_rope_keys(output_dir / "config.json")
    here = Path(__file__).parent / "decilm"
    for name in MODELING_FILES:
        shutil.copyfile(here / name, output_dir / name)
    if tokenizer is not None:
        tokenizer.save_pretrained(output_dir)
    return output_dir


def _add_legacy_rope_keys(config_file: Path) -> None:
    """transformers 5 writes ``rope_parameters`` only; loaders written for the public DeciLM
    checkpoints (vLLM's ``nemotron-nas``, transformers 4.x remote code) read ``rope_theta``
    and ``rope_scaling``, so both spellings are written."""
    import json

    config = json.loads(config_file.read_text())
    rope = config.get("rope_parameters") or {}
    if "rope_theta" not in config and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
        extra = {k: v for k, v in rope.items() if k != "rope_theta"}
        config.setdefault("rope_scaling", None if extra.get("rope_type", "default") == "default"
                          else extra)
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_child(path: Path, device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).to(device).eval()
