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

from .blocks import Shape, Variant, block_params, make_block


def model_kl(parent, child, batches, logps=None, timing: dict | None = None) -> float:
    """Mean per-token KL(parent || child) over ``batches`` of input ids (``logps``: the
    parent's targets on them, from ``parent_logps``, to skip its forward).  ``timing``
    gets the child's forward ``seconds`` and ``tokens`` (its throughput, measured on the
    forwards the KL needs anyway instead of extra ones)."""
    import time

    import torch
    from thinkforge.generators.backends.placement import synchronize

    total, n, spent = 0.0, 0, 0.0
    with torch.no_grad():
        for k, ids in enumerate(batches):
            target = logps[k] if logps is not None else ParentTargets(
                parent(input_ids=ids, use_cache=False).logits)
            synchronize(str(ids.device))
            t0 = time.perf_counter()
            q = child(input_ids=ids, use_cache=False).logits
            synchronize(str(ids.device))
            spent += time.perf_counter() - t0
            total += float(target.kl(0, ids.shape[0], q, lambda x: x).mean()) * ids.numel()
            n += ids.numel()
    if timing is not None:
        timing.update(seconds=spent, tokens=n)
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


def parent_logps(parent, batches, timing: dict | None = None) -> list:
    """The parent's next-token distributions per batch (``ParentTargets``, computed once and
    reused by every ``model_kl`` against the same batches); ``timing`` as in ``model_kl``."""
    import time

    import torch
    from thinkforge.generators.backends.placement import synchronize

    out, spent = [], 0.0
    with torch.no_grad():
        for ids in batches:
            synchronize(str(ids.device))
            t0 = time.perf_counter()
            logits = parent(input_ids=ids, use_cache=False).logits
            synchronize(str(ids.device))
            spent += time.perf_counter() - t0
            out.append(ParentTargets(logits))
    if timing is not None:
        timing.update(seconds=spent, tokens=sum(b.numel() for b in batches))
    return out


def run_layers(model, hidden, start: int):
    """The decoder ``model`` (``LlamaModel``) from layer ``start`` on, then its final norm,
    on hidden states entering that layer: the same mask and rotary embeddings as its own
    forward."""
    mask, cos_sin, pos = _layer_ctx(model, hidden)
    for layer in model.layers[start:]:
        hidden = layer(hidden, attention_mask=mask, position_embeddings=cos_sin,
                       position_ids=pos, use_cache=False)
    return model.norm(hidden)


def _attention_part(block, h, ctx):
    """``h`` after the block's attention (and residual): shared by every FFN width of the
    same KV-head count, so it is computed once per count."""
    if block.attention_no_op:
        return h
    mask, cos_sin, pos = ctx
    out, _ = block.self_attn(hidden_states=block.input_layernorm(h), attention_mask=mask,
                             position_embeddings=cos_sin, position_ids=pos)
    return h + out


def _ffn_part(block, h):
    return h if block.ffn_no_op else h + block.mlp(block.post_attention_layernorm(h))


class ParentTargets:
    """The parent's next-token distribution on the scored positions, prepared once: its
    probabilities ``p`` and ``sum p log p`` per token, so a variant's KL needs only its
    logits: ``KL = sum p log p - sum p * logits + logsumexp(logits)`` (no log-softmax of
    the variant's 49k-wide rows, no exp of the parent's per variant)."""

    def __init__(self, logits, stride: int = 1):
        import torch

        self.stride = max(1, int(stride))
        logp = torch.log_softmax(logits[:, ::self.stride].float(), -1)
        self.p = logp.exp()
        self.neg_entropy = (self.p * logp).sum(-1)            # sequences x positions

    def kl(self, first: int, n: int, final, lm_head):
        """Mean KL per row of ``final`` (hidden states after the final norm): rows are
        variants x ``n`` sequences, against this object's sequences ``first .. first+n-1``.
        The cross term is a batched dot product (no variants x vocabulary temporary)."""
        import torch

        logits = lm_head(final[:, ::self.stride]).float()
        logits = logits.view(-1, n, *logits.shape[1:])            # variants, n, T, vocab
        p = self.p[first:first + n]
        cross = torch.einsum("vntk,ntk->vnt", logits, p)
        kl = self.neg_entropy[first:first + n] - cross + torch.logsumexp(logits, -1)
        return kl.mean(-1).reshape(-1)


def _row_kl(lm_head, final, targets: ParentTargets, first: int, n: int, rows_per_chunk: int):
    """Per row of ``final`` (variants x ``n`` sequences starting at sequence ``first``), the
    mean per-token KL(parent || variant); the LM head runs on a few rows at a time (a 49k
    vocabulary x 1,000s of tokens would not fit otherwise)."""
    import torch

    out = []
    step = max(1, rows_per_chunk // n) * n          # whole variants per chunk
    for r in range(0, final.shape[0], step):
        out.append(targets.kl(first, n, final[r:r + step], lm_head))
    return torch.cat(out).tolist()


def _stable(values: list[float], tolerance: float, min_sequences: int) -> bool:
    """Stop adding sequences once the standard error of the mean is within ``tolerance`` of
    the mean (or below 1e-4 nats: KL that small decides nothing)."""
    if tolerance <= 0 or len(values) < min_sequences:
        return False
    import statistics

    mean = statistics.fmean(values)
    se = statistics.stdev(values) / len(values) ** 0.5
    return se <= max(tolerance * abs(mean), 1e-4)


def scored_sequences(batches, max_tokens: int | None) -> int:
    """How many calibration sequences block scoring may use: ``max_tokens`` caps them (one
    sequence is allowed; early stopping then has nothing to compare and scores it whole)."""
    n = sum(len(b) for b in batches)
    if max_tokens and batches:
        n = min(n, -(-max_tokens // batches[0].shape[1]))
    return n


class ParentStates:
    """What scoring keeps of the parent's forward over the first ``sequences`` calibration
    sequences: the hidden state entering every layer and the logits.  It is fed by the
    forward that ranks the FFN channels (``blocks.ffn_channel_scores(on_output=...)``), so
    the parent runs once for both."""

    def __init__(self, sequences: int):
        self.sequences, self.seen = sequences, 0
        self._states: list[list] = []
        self._logits: list = []

    def __call__(self, output) -> None:
        take = min(self.sequences - self.seen, output.logits.shape[0])
        if take <= 0:
            return
        hs = output.hidden_states
        if not self._states:
            self._states = [[] for _ in range(len(hs) - 1)]
        for i in range(len(hs) - 1):     # the last entry is after the final norm
            self._states[i].append(hs[i][:take])
        self._logits.append(output.logits[:take])
        self.seen += take

    def collect(self, parent, batches) -> ParentStates:
        """Run the parent over ``batches`` until enough sequences are kept (when no channel
        ranking pass fed this object)."""
        import torch

        with torch.no_grad():
            for ids in batches:
                if self.seen >= self.sequences:
                    break
                self(parent(input_ids=ids, use_cache=False, output_hidden_states=True))
        return self

    def states(self) -> list:
        import torch

        return [torch.cat(s) for s in self._states]

    def logits(self):
        import torch

        return torch.cat(self._logits)


def score_library(parent, shape: Shape, variants: list[Variant], batches, channel_scores,
                  cache: ScoreCache | None = None,
                  progress: Callable[[str], None] | None = None, *,
                  max_tokens: int | None = None, tolerance: float = 0.0,
                  min_sequences: int = 2, stride: int = 1,
                  parent_states: ParentStates | None = None,
                  stats: dict | None = None) -> dict[int, dict[str, float]]:
    """KL of every (layer, variant); the parent's own variant scores 0.

    Per layer, the variants' block outputs are stacked on the batch dimension and run
    through the parent's remaining layers in one forward (bigger matrix products, one pass
    of Python per layer instead of one per variant); the attention output of each KV-head
    count is reused for all FFN widths.  Sequences are added one round at a time and a
    variant stops when its KL estimate is stable (``tolerance``: standard error / mean,
    0 = every sequence); ``max_tokens`` caps the tokens scored per variant.  ``stride``
    scores every stride-th position only: the remaining layers still run on every position
    (later positions attend to earlier ones), but the LM head and the 49k-wide softmax,
    half of the work per variant on SmolLM2, run on 1/stride of them.
    ``parent_states``: the parent's states from an earlier forward (else one is run here).
    """
    import time

    cache = cache or ScoreCache(None, {})
    todo = [i for i in range(shape.layers)
            if any(cache.get(i, v) is None for v in variants if v != shape.parent_variant)]
    states, targets = [], None
    if todo and batches:
        n_seqs = scored_sequences(batches, max_tokens)
        if parent_states is None or parent_states.seen < n_seqs:
            parent_states = ParentStates(n_seqs).collect(parent, batches)
        states = [s[:n_seqs] for s in parent_states.states()]
        targets = ParentTargets(parent_states.logits()[:n_seqs], stride)
    on_cpu = not states or states[0].device.type == "cpu"
    step = 1 if on_cpu else len(batches[0])     # a GPU wants big rounds, a CPU early stops
    # LM head cost in decoder-layer units, for the ETA (deeper layers run fewer layers)
    head = shape.vocab * shape.hidden / max(1, block_params(shape, shape.parent_variant))
    weight = {i: shape.layers - i + head / max(1, stride) for i in todo}
    total_weight, done_weight = sum(weight.values()), 0.0
    started = time.perf_counter()
    totals = {"variant_evaluations": 0, "tokens_scored": 0, "positions_scored": 0,
              "stopped_early": 0}
    result: dict[int, dict[str, float]] = {}
    for i in range(shape.layers):
        scores = {shape.parent_variant.key: 0.0}
        fresh_keys = []
        for v in variants:
            if v == shape.parent_variant:
                continue
            cached = cache.get(i, v)
            if cached is not None:
                scores[v.key] = cached
            else:
                fresh_keys.append(v)
        if fresh_keys:
            found = _score_layer(parent, shape, i, fresh_keys, states[i], targets,
                                 channel_scores, step, tolerance, min_sequences, totals)
            scores.update(found)
            cache.put_layer(i, found)
            done_weight += weight[i]
        if progress:
            elapsed = time.perf_counter() - started
            eta = elapsed * (total_weight - done_weight) / done_weight if done_weight else 0.0
            progress(f"scored layer {i + 1}/{shape.layers}"
                     + (f" ({elapsed:.0f} s, ETA {eta:.0f} s)" if fresh_keys else " (cached)"))
        result[i] = scores
    if stats is not None:
        stats.update(totals)
    return result


def _score_layer(parent, shape: Shape, i: int, todo: list[Variant], hidden,
                 targets: ParentTargets, channel_scores, step: int, tolerance: float,
                 min_sequences: int, totals: dict) -> dict[str, float]:
    import torch

    layer = parent.model.layers[i]
    blocks = {v: make_block(layer, parent.config, shape, v,
                            channel_scores[i] if channel_scores else None).eval() for v in todo}
    per_seq: dict[Variant, list[float]] = {v: [] for v in todo}
    active, n, first = list(todo), 0, max(step, min_sequences)
    rows = max(1, 4096 * targets.stride // hidden.shape[1])   # LM head on <= 4k positions
    with torch.no_grad():
        while active and n < hidden.shape[0]:
            take = first if n == 0 else step
            h = hidden[n:n + take]
            ctx = _layer_ctx(parent.model, h)
            mids: dict[int, object] = {}
            outs = []
            for v in active:
                if v.kv_heads not in mids:
                    mids[v.kv_heads] = _attention_part(blocks[v], h, ctx)
                outs.append(_ffn_part(blocks[v], mids[v.kv_heads]))
            final = run_layers(parent.model, torch.cat(outs), i + 1)
            kls = _row_kl(parent.lm_head, final, targets, n, h.shape[0], rows)
            for j, v in enumerate(active):
                per_seq[v].extend(kls[j * h.shape[0]:(j + 1) * h.shape[0]])
            totals["variant_evaluations"] += len(active)
            totals["tokens_scored"] += len(active) * h.shape[0] * h.shape[1]
            totals["positions_scored"] += (len(active) * h.shape[0]
                                           * len(range(0, h.shape[1], targets.stride)))
            n += h.shape[0]
            still = [v for v in active if not _stable(per_seq[v], tolerance, min_sequences)]
            if n < hidden.shape[0]:
                totals["stopped_early"] += len(active) - len(still)
            active = still
    return {v.key: round(sum(kl) / len(kl), 8) for v, kl in per_seq.items()}


def _layer_ctx(model, hidden):
    """(mask, rotary cos/sin, positions) for hidden states of this shape."""
    import torch
    from transformers.masking_utils import create_causal_mask

    pos = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    mask = create_causal_mask(config=model.config, inputs_embeds=hidden, attention_mask=None,
                              past_key_values=None, position_ids=pos)
    return mask, model.rotary_emb(hidden, position_ids=pos), pos


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
