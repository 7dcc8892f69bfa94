"""The whole distillation: library -> scores -> search -> (fusion) -> KD -> checkpoint + report.

``run_distill`` takes the parent's local directory and the data version's texts; the CLI
(``thinkforge train distill``) resolves and verifies ``--data``, calls this and publishes the
run record.  ``distill_report.json`` (written next to the child) is described in the README.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from thinkforge.manifests.errors import InputDataError, require

from . import blocks as B
from .config import DistillConfig

LOG = logging.getLogger(__name__)

REPORT_NAME = "distill_report.json"
MODELOPT_NOTES = {
    "used": [
        ("modelopt.torch.prune.importance_hooks.IndependentChannelContributionHook "
        "(FFN channel contribution on down_proj)"),
        ("modelopt.torch.puzzletron.mip.mip_with_multi_layer_replacements.run_mip "
        "(the Puzzle MIP, PuLP + CBC)"),
        ("modelopt.torch.distill (convert with kd_loss, LogitsDistillationLoss, "
        "StaticLossBalancer, export)"),
    ],
    "hand_written": [
        ("weight slicing / KV-head pooling per variant and the one-block KL scoring loop: "
        "modelopt's puzzletron builds its replacement library through its Hydra pipeline "
        "(anymodel converters, sharded checkpoints, torch.distributed) which needs a "
        "launcher and GPUs; the pieces are small, so they are written against HF Llama here"),
        "FFN Fusion (modelopt 0.47 has none)",
        ("the DeciLM exporter and its modeling code (puzzletron writes its own 'anymodel' "
        "checkpoints, not the block_configs / auto_map layout that transformers and vLLM load)"),
    ],
    "not_on_cpu_or_undeclared": [
        ("importing modelopt.torch.puzzletron needs hydra-core, typeguard, immutabledict and "
        "fire, which nvidia-modelopt does not declare (the distill extra adds them)"),
        "modelopt's Minitron pruning needs Megatron-Core and does not apply to HF models",
    ],
}


def _stderr(msg: str) -> None:
    LOG.info(msg)


def load_parent(model: str, where=None):
    """Tokenizer and parent from a local directory (nothing is downloaded), in ``where``'s
    dtype / attention kernel on its device (default: float32 on the CPU)."""
    require("torch", "distill")
    transformers = require("transformers", "distill")
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise InputDataError(f"--model {model}: no config.json there",
                             hint="pass a local Hugging Face model directory "
                                  "(a Llama-family checkpoint)")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    import torch

    kwargs = where.model_kwargs() if where is not None else {"dtype": torch.float32}
    parent = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs).eval()
    if where is not None:
        parent.to(where.device)
    layers = getattr(getattr(parent, "model", None), "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") and hasattr(layer, "mlp")
                                 and hasattr(layer.mlp, "gate_proj") for layer in layers):
        raise InputDataError(f"--model {model} is not a Llama-family model "
                             f"({type(parent).__name__})",
                             hint="distillation supports Llama-style decoders "
                                  "(q/k/v/o attention, gate/up/down FFN, RMSNorm)")
    return tokenizer, parent


def set_threads(requested: int | None) -> int:
    """torch's intra-op threads: ``requested``, else the CPUs this process may run on
    (torch's own default counts the machine's cores, which over-subscribes a CPU set or a
    container limit and makes every matrix product slower)."""
    import os

    import torch

    if requested:
        torch.set_num_threads(requested)
    elif "OMP_NUM_THREADS" not in os.environ:       # the user's setting wins
        cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1)
        torch.set_num_threads(max(1, cpus))
    return torch.get_num_threads()


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


class Phases:
    """Wall time per phase of a run (``phases_s`` in the report, printed as it goes)."""

    def __init__(self, log: Callable[[str], None]):
        self.log, self.times = log, {}
        self.mark = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(now - self.mark, 2)
        self.mark = now
        self.log(f"phase {name}: {self.times[name]:.1f} s")


def budget_limits(cfg: DistillConfig, shape: B.Shape, parent_params: int,
                  parent_time: float) -> dict[str, float]:
    """Budgets as upper bounds on sums over blocks."""
    parent_kv = shape.layers * B.kv_bytes_per_token(shape, shape.parent_variant,
                                                    cfg.kv_dtype_bytes)
    limits = {}
    for key, value in cfg.budgets.items():
        if key == "params":
            total = value * parent_params if value <= 1 else value
            limits["params"] = total - shape.fixed_params()
        elif key == "kv":
            limits["kv"] = value * parent_kv if value <= 1 else value
        elif key == "time":
            limits["time"] = value * parent_time
        elif key == "throughput":
            limits["time"] = parent_time / value
    return limits


def uniform_variants(shape: B.Shape, target_params: int) -> list[B.Variant]:
    """Every layer keeps its attention; one FFN width for all layers, total <= target."""
    per_layer = (target_params - shape.fixed_params()) / shape.layers
    room = per_layer - B.attention_params(shape, shape.kv_heads) - shape.hidden
    width = max(1, min(shape.intermediate, int(room // (3 * shape.hidden))))
    return [B.Variant(shape.kv_heads, width)] * shape.layers


def measure(name: str, model, parent, eval_batches, kv_bytes: int, logps=None,
            timing: dict | None = None) -> dict:
    """``cpu_tokens_per_s`` keeps its name (the report's schema) but is measured on the
    device the run uses (``placement.device`` in the report), over the forwards of the
    held-back text that the KL needs anyway (``timing``: the parent's, from
    ``parent_logps``), not over extra forwards."""
    from .scoring import model_kl

    timing = dict(timing or {})
    kl = 0.0 if model is parent else model_kl(parent, model, eval_batches, logps, timing)
    return {"model": name, "params": count_params(model), "kv_bytes_per_token": kv_bytes,
            "cpu_tokens_per_s": round(timing["tokens"] / max(timing["seconds"], 1e-9), 1),
            "kl_to_parent": round(kl, 6)}


def run_distill(model: str, texts: list[str] | None, output_dir: str | Path, cfg: DistillConfig,
                *, rows: list[dict] | None = None, data_fingerprint: str = "",
                cache_root: Path | None = None, log: Callable[[str], None] = _stderr) -> dict:
    """Distil ``model`` under ``cfg.budgets``; ``texts`` or data-version ``rows`` calibrate it."""
    import torch
    from thinkforge.generators.backends.placement import resolve

    from .child import build_child, load_child, save_child
    from .fusion import fusable_runs
    from .kd import distill
    from .scoring import (
        ParentStates,
        ScoreCache,
        model_kl,
        parent_logps,
        score_library,
        scored_sequences,
        sha256_of_weights,
    )
    from .search import solve
    from .texts import row_texts, split_texts, token_batches

    started = time.perf_counter()
    phases = Phases(log)
    where = resolve(cfg.device, cfg.dtype, cfg.attn_implementation)
    threads = set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tokenizer, parent = load_parent(model, where)
    shape = B.Shape.of(parent.config)
    if texts is None:
        texts = row_texts(rows or [], tokenizer)
    if not texts:
        raise InputDataError("the data version gave no text to calibrate on")
    rest, held = split_texts(texts)
    kw = {"seq_len": cfg.seq_len, "batch_size": cfg.batch_size}
    calib = token_batches(rest, tokenizer, tokens=cfg.calibration_tokens, repeat=True, **kw)
    held_batches = token_batches(held, tokenizer, tokens=cfg.calibration_tokens, repeat=True, **kw)
    kd_batches = token_batches(rest, tokenizer, tokens=None, **kw)
    calib, held_batches, kd_batches = ([b.to(where.device) for b in bs]
                                       for bs in (calib, held_batches, kd_batches))
    phases.done("load")

    log(f"parent: {shape.layers} layers, hidden {shape.hidden}, FFN {shape.intermediate}, "
        f"{shape.heads} heads / {shape.kv_heads} KV heads")
    # one parent pass ranks the FFN channels and keeps what block scoring starts from
    states = ParentStates(scored_sequences(calib, cfg.score_tokens))
    channel_scores = B.ffn_channel_scores(parent, calib, on_output=states)
    align = cfg.ffn_align or B.default_align(shape.intermediate)
    variants = B.library(shape, align=align, attention_removal=cfg.attention_removal,
                         kv_reduction=cfg.kv_reduction, ffn_removal=cfg.ffn_removal)
    log(f"block library: {len(variants)} variants per layer "
        f"({', '.join(v.key for v in variants)})")
    phases.done("channel_ranking")
    times = B.time_variants(parent, shape, variants)
    phases.done("block_timing")

    key = {"parent_sha256": sha256_of_weights(Path(model)), "data": data_fingerprint,
           "calibration": {"tokens": cfg.calibration_tokens, "seq_len": cfg.seq_len,
                           "batch_size": cfg.batch_size, "texts": len(rest),
                           "held_back": "every 5th row", "score_tokens": cfg.score_tokens,
                           "score_tolerance": cfg.score_tolerance,
                           "score_stride": cfg.score_stride, "dtype": where.dtype}}
    cache_file = ScoreCache.file_for(Path(cache_root), key) if cache_root else None
    cache = ScoreCache(cache_file, key)
    score_stats: dict = {}
    kls = score_library(parent, shape, variants, calib, channel_scores, cache, log,
                        max_tokens=cfg.score_tokens, tolerance=cfg.score_tolerance,
                        stride=cfg.score_stride, parent_states=states, stats=score_stats)
    del states
    phases.done("block_scoring")

    offered = [[v for v in variants if B.allowed(i, v)] for i in range(shape.layers)]
    options = [[{"kl": kls[i][v.key],
                 "costs": {"params": B.block_params(shape, v),
                           "kv": B.kv_bytes_per_token(shape, v, cfg.kv_dtype_bytes),
                           "time": times[v.key]}} for v in offered[i]]
               for i in range(shape.layers)]
    parent_params = count_params(parent)
    parent_time = shape.layers * times[shape.parent_variant.key]
    limits = budget_limits(cfg, shape, parent_params, parent_time)
    choice = solve(options, limits, cfg.solver)
    chosen = [offered[i][j] for i, j in enumerate(choice)]
    log("chosen: " + " ".join(v.key for v in chosen))
    phases.done("search")

    child, configs, layer_map = build_child(parent, shape, chosen, channel_scores)
    parent_timing: dict = {}     # every KL below is against these targets
    held_logps = parent_logps(parent, held_batches, parent_timing)
    fusion = None
    if cfg.ffn_fusion:
        runs = fusable_runs(chosen)
        kl_unfused = model_kl(parent, child, held_batches, held_logps)
        if runs:
            child, configs, layer_map = build_child(parent, shape, chosen, channel_scores, runs)
        kl_fused = model_kl(parent, child, held_batches, held_logps) if runs else kl_unfused
        fusion = {"runs": runs, "layers_before": shape.layers, "layers_after": len(configs),
                  "kl_before_fusion": round(kl_unfused, 6), "kl_after_fusion": round(kl_fused, 6),
                  "kl_cost": round(kl_fused - kl_unfused, 6)}
        log(f"FFN Fusion: runs {runs or 'none (no consecutive attention-free blocks)'}, "
            f"KL {kl_unfused:.4f} -> {kl_fused:.4f}")

    child_kv = sum(B.kv_bytes_per_token(shape, v, cfg.kv_dtype_bytes) for v in chosen)
    parent_kv = shape.layers * B.kv_bytes_per_token(shape, shape.parent_variant,
                                                    cfg.kv_dtype_bytes)
    report_models = [measure("parent", parent, parent, held_batches, parent_kv,
                             timing=parent_timing),
                     measure("child_before_kd", child, parent, held_batches, child_kv,
                             held_logps)]
    uniform = uniform_variants(shape, report_models[1]["params"])
    uniform_child, _, _ = build_child(parent, shape, uniform, channel_scores)
    uniform_report = {"ffn_width": uniform[0].ffn_width, "params": count_params(uniform_child),
                      "kl_to_parent_before_kd": round(model_kl(parent, uniform_child,
                                                               held_batches, held_logps), 6)}
    if not (cfg.uniform_kd and cfg.kd_steps):
        del uniform_child

    phases.done("build_and_measure")
    history: list = []
    # KD trains float32 weights; a bfloat16 parent (CUDA) runs both models under bf16 autocast
    autocast = where.dtype if where.dtype != "float32" else None
    if cfg.kd_steps:
        log(f"knowledge distillation: {cfg.kd_steps} steps on {len(kd_batches)} batches")
        child, history = distill(child.float(), parent, kd_batches, steps=cfg.kd_steps,
                                 lr=cfg.kd_lr, temperature=cfg.kd_temperature,
                                 cosine_weight=cfg.kd_cosine_weight,
                                 train_embeddings=cfg.kd_train_embeddings, log=log,
                                 autocast=autocast, minutes=cfg.kd_minutes)
    phases.done("kd")
    report_models.append(measure("child_after_kd", child, parent, held_batches, child_kv,
                                 held_logps))
    if cfg.uniform_kd and cfg.kd_steps:
        log(f"uniform baseline: the same {len(history)} KD steps")
        torch.manual_seed(cfg.seed)
        uniform_child, _ = distill(uniform_child.float(), parent, kd_batches,
                                   steps=len(history), lr=cfg.kd_lr,
                                   temperature=cfg.kd_temperature,
                                   cosine_weight=cfg.kd_cosine_weight,
                                   train_embeddings=cfg.kd_train_embeddings, autocast=autocast)
        uniform_report["kl_to_parent_after_kd"] = round(model_kl(parent, uniform_child,
                                                                 held_batches, held_logps), 6)
        del uniform_child

    out = save_child(child, Path(output_dir), tokenizer)
    reloaded = load_child(out, where.device)
    with torch.no_grad():
        a = child(input_ids=held_batches[0], use_cache=False).logits
        b = reloaded(input_ids=held_batches[0], use_cache=False).logits
    reload = {"identical": bool(torch.equal(a, b)),
              "max_abs_diff": float((a - b).abs().max())}
    # a GPU may pick another kernel for a freshly loaded model: equal within float32 noise
    if not (reload["identical"] or (where.on_cuda and reload["max_abs_diff"] < 1e-3)):
        raise RuntimeError(f"the saved child does not reproduce its logits: {reload}")
    phases.done("save_and_reload")

    layers = []
    for i, v in enumerate(chosen):
        layers.append({"layer": i, **B.describe(shape, v, cfg.kv_dtype_bytes),
                       "kl_alone": kls[i][v.key], "block_time_ms": times[v.key],
                       "child_layer": next(j for j, m in enumerate(layer_map) if i in m)})
    report = {
        "report_version": 1,
        "parent": str(model),
        "output_dir": str(out),
        "format": {"architectures": ["DeciLMForCausalLM"], "model_type": "nemotron-nas",
                   "auto_map": True, "child_layers": len(configs),
                   "vllm_loadable": B.vllm_loadable(shape, chosen)
                   and all(c["ffn"]["no_op"] or c["ffn"]["intermediate_size"] % 256 == 0
                           for c in configs),
                   "reload": reload},
        "budgets": {"requested": cfg.budgets,
                    "limits_on_blocks": {k: round(v, 4) for k, v in limits.items()},
                    "used_by_blocks": {k: round(sum(options[i][choice[i]]["costs"][k]
                                                    for i in range(shape.layers)), 4)
                                       for k in ("params", "kv", "time")}},
        "search": {"solver": "modelopt run_mip (PuLP CBC)" if cfg.solver == "modelopt"
                   else "scipy.optimize.milp (HiGHS)",
                   "objective": "sum of one-block KL", "summed_kl":
                   round(sum(kls[i][v.key] for i, v in enumerate(chosen)), 8)},
        "layers": layers,
        "models": {m["model"]: m for m in report_models},
        "uniform_baseline": uniform_report,
        "fusion": fusion,
        "kd": {"steps": len(history), "steps_requested": cfg.kd_steps,
               "minutes_cap": cfg.kd_minutes, "lr": cfg.kd_lr, "temperature": cfg.kd_temperature,
               "cosine_weight": cfg.kd_cosine_weight,
               "train_embeddings": cfg.kd_train_embeddings, "history": history},
        "library": {"variants": [{**B.describe(shape, v, cfg.kv_dtype_bytes),
                                  "block_time_ms": times[v.key]} for v in variants],
                    "ffn_align": align, "block_configs": configs},
        "calibration": {"tokens": sum(b.numel() for b in calib),
                        "held_back_tokens": sum(b.numel() for b in held_batches),
                        "kd_tokens": sum(b.numel() for b in kd_batches),
                        "score_cache": str(cache_file) if cache_file else None,
                        "scoring": {"max_tokens_per_variant": cfg.score_tokens,
                                    "tolerance": cfg.score_tolerance,
                                    "position_stride": cfg.score_stride, **score_stats}},
        "placement": {**where.as_dict(), "torch_threads": threads},
        "phases_s": phases.times,
        "modelopt": MODELOPT_NOTES,
        "wall_time_s": round(time.perf_counter() - started, 2),
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report

