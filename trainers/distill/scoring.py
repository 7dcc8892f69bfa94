"""One-block replacement scores: KL(parent || parent with only layer i replaced by variant v).

The parent runs once over the calibration batches; its hidden state entering every layer and
its next-token log-probabilities are kept.  A variant of layer i is then scored by running
only layers i..L-1 (the variant, then the parent's own layers) from the kept hidden state,
which halves the work on average.  Scores are the mean per-token KL in nats.

Scores are cached in a JSON file per (parent weights sha256, data fingerprint, calibration
settings); each layer's scores are written as soon as they are computed, so an interrupted
run resumes and a second run with another budget scores nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .blocks import Shape, Variant, make_block


def token_kl(parent_logp, child_logits):
    """Mean over tokens of KL(parent || child) in nats; ``parent_logp`` are log-probs."""
    import torch

    child_logp = torch.log_softmax(child_logits.float(), dim=-1)
    kl = (parent_logp.exp() * (parent_logp - child_logp)).sum(-1)
    return kl.mean()


def model_kl(parent, child, batches) -> float:
    """Mean per-token KL(parent || child) over ``batches`` of input ids."""
    import torch

    total, n = 0.0, 0
    with torch.no_grad():
        for ids in batches:
            p = torch.log_softmax(parent(input_ids=ids, use_cache=False).logits.float(), -1)
            q = child(input_ids=ids, use_cache=False).logits
            total += float(token_kl(p, q)) * ids.numel()
            n += ids.numel()
    return total / max(n, 1)


class ScoreCache:
    """``{layer: {variant key: kl}}`` in one JSON file, rewritten atomically per layer."""

    def __init__(self, path: Path | None, key: dict):
        self.path, self.key = path, key
        self.scores: dict[str, dict[str, float]] = {}
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = {}
            if data.get("key") == key:
                self.scores = data.get("scores", {})

    def get(self, layer: int, v: Variant) -> float | None:
        return self.scores.get(str(layer), {}).get(v.key)

    def put_layer(self, layer: int, values: dict[str, float]) -> None:
        self.scores.setdefault(str(layer), {}).update(values)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": self.key, "scores": self.scores}, indent=1))
        os.replace(tmp, self.path)

    @staticmethod
    def file_for(root: Path, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return root / f"scores-{digest}.json"


def score_library(parent, shape: Shape, variants: list[Variant], batches, channel_scores,
                  cache: ScoreCache | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[int, dict[str, float]]:
    """KL of every (layer, variant); the parent's own variant scores 0."""
    import torch
    from torch import nn

    cache = cache or ScoreCache(None, {})
    layers = parent.model.layers
    todo = [i for i in range(shape.layers)
            if any(cache.get(i, v) is None for v in variants if v != shape.parent_variant)]
    states: list = []
    if todo:
        with torch.no_grad():
            for ids in batches:
                out = parent(input_ids=ids, use_cache=False, output_hidden_states=True)
                states.append((list(out.hidden_states[:shape.layers]),
                               torch.log_softmax(out.logits.float(), -1)))
    result: dict[int, dict[str, float]] = {}
    try:
        for i in range(shape.layers):
            scores = {shape.parent_variant.key: 0.0}
            fresh = {}
            for v in variants:
                if v == shape.parent_variant:
                    continue
                cached = cache.get(i, v)
                if cached is not None:
                    scores[v.key] = cached
                    continue
                block = make_block(layers[i], parent.config, shape, v,
                                   channel_scores[i] if channel_scores else None).eval()
                parent.model.layers = nn.ModuleList([block, *layers[i + 1:]])
                total, n = 0.0, 0
                with torch.no_grad():
                    for hidden, logp in states:
                        h = hidden[i]
                        logits = parent(inputs_embeds=h, use_cache=False).logits
                        total += float(token_kl(logp, logits)) * h.shape[0] * h.shape[1]
                        n += h.shape[0] * h.shape[1]
                parent.model.layers = layers
                fresh[v.key] = scores[v.key] = round(total / max(n, 1), 8)
            if fresh:
                cache.put_layer(i, fresh)
            if progress:
                progress(f"scored layer {i + 1}/{shape.layers}"
                         + ("" if fresh else " (cached)"))
            result[i] = scores
    finally:
        parent.model.layers = layers
    return result


def sha256_of_weights(model_dir: Path) -> str:
    """sha256 over the weight files of a local model directory (the cache key's parent part)."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(model_dir).iterdir()
                   if p.suffix in (".safetensors", ".bin") and p.is_file())
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    h.update((Path(model_dir) / "config.json").read_bytes()
             if (Path(model_dir) / "config.json").is_file() else b"")
    return h.hexdigest()
