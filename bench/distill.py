"""Puzzle-style distillation of SmolLM2-135M vs uniform FFN pruning at the same size.

Runs ``thinkforge train distill`` on the embedded SmolLM2-135M with ``--budget params=0.6``
(calibration / KD text: the bundled GSM8K demo questions imported as a data version), then
builds the baseline that prunes every layer's FFN uniformly (same channel-contribution
ranking, attention untouched) to at most the searched child's parameter count, gives it
the same KD steps, and prints parameters, KV bytes per token, CPU tokens/s and KL to the
parent on the held-back rows for parent / child / child+KD / uniform / uniform+KD.

    flock /tmp/tf-cpu.lock .venv/bin/python bench/distill.py [--kd-steps 30] [--budget params=0.6]

It prints the searched run's wall time per phase (``phases_s``) against the goal (the README
example in < 5 minutes on 2 cores) and against the floor: one forward of the parent over
the calibration tokens, measured in the same process after the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--budget", action="append", default=None)
    # unset: the DistillConfig default (what `thinkforge train distill` does)
    ap.add_argument("--calibration-tokens", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--kd-steps", type=int, default=None)
    ap.add_argument("--kd-lr", type=float, default=None)
    ap.add_argument("--score-tokens", type=int, default=None)
    ap.add_argument("--score-tolerance", type=float, default=None)
    ap.add_argument("--score-stride", type=int, default=None)
    ap.add_argument("--kd-minutes", type=float, default=None)
    ap.add_argument("--no-baseline", action="store_true", help="only the searched run")
    ap.add_argument("--ffn-fusion", action="store_true")
    ap.add_argument("--work", type=Path, default=None, help="keep the store / outputs here")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    import torch
    from thinkforge.curation.importer import ImportOptions, import_file
    from thinkforge.manifests import DatasetStore
    from thinkforge.trainers.base import resolve_model_path
    from thinkforge.trainers.data import open_data, read_rows
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.child import build_child
    from thinkforge.trainers.distill.config import DistillConfig, parse_budgets
    from thinkforge.trainers.distill.kd import distill
    from thinkforge.trainers.distill.pipeline import load_parent, measure, uniform_variants
    from thinkforge.trainers.distill.run import train_distill
    from thinkforge.trainers.distill.scoring import parent_logps
    from thinkforge.trainers.distill.texts import row_texts, split_texts, token_batches

    work = args.work or Path(tempfile.mkdtemp(prefix="tf-distill-bench-"))
    store = DatasetStore(work / "store")
    if not store.names():
        import_file(store, ROOT / "curation" / "data" / "gsm8k_train_demo.jsonl",
                    ImportOptions(name="gsm8k", preset="gsm8k"))
    given = {k: getattr(args, k) for k in ("calibration_tokens", "seq_len", "batch_size",
                                            "kd_steps", "kd_lr", "score_tokens",
                                            "score_tolerance", "score_stride", "kd_minutes")
             if getattr(args, k) is not None}
    cfg = DistillConfig(budgets=parse_budgets(args.budget or ["params=0.6"]),
                        ffn_fusion=args.ffn_fusion, **given)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    record = train_distill(store, "gsm8k", args.model, work / "child", cfg, log=log)
    report = record.extra["distill_report"]
    searched_s = time.perf_counter() - t0
    tokenizer, parent = load_parent(resolve_model_path(args.model))
    rest, held = split_texts(row_texts(read_rows(open_data(store, "gsm8k", ("prompts",))),
                                       tokenizer))
    kw = dict(seq_len=cfg.seq_len, batch_size=cfg.batch_size)
    calib = token_batches(rest, tokenizer, tokens=cfg.calibration_tokens, repeat=True, **kw)
    floor = _forward_seconds(parent, calib)
    tokens = sum(b.numel() for b in calib)
    met = "met" if searched_s < 300 else "NOT met"
    print(f"searched run {searched_s:.1f} s (goal < 300 s: {met}, {searched_s / 300:.2f}x of "
          f"it); floor: one parent forward over {tokens} tokens {floor:.2f} s "
          f"({tokens / floor:.0f} tokens/s), the run = {searched_s / floor:.0f} floors")
    print(f"{'phase':18} {'s':>7} {'floors':>7}")
    for k, v in report["phases_s"].items():
        print(f"{k:18} {v:>7.1f} {v / floor:>7.1f}")
    print(f"scoring: {report['calibration']['scoring']}; KD {report['kd']['steps']} steps; "
          f"held-back KL child {report['models']['child_before_kd']['kl_to_parent']:.4f} -> "
          f"{report['models']['child_after_kd']['kl_to_parent']:.4f} after KD, uniform "
          f"{report['uniform_baseline']['kl_to_parent_before_kd']:.4f} before KD; torch threads "
          f"{torch.get_num_threads()}")
    if args.json and args.no_baseline:
        args.json.write_text(json.dumps({"report": report, "floor_s": floor}, indent=1))
    if args.no_baseline:
        return

    # the uniform baseline, same calibration text, same held-back text, same KD
    shape = B.Shape.of(parent.config)
    held_b = token_batches(held, tokenizer, tokens=cfg.calibration_tokens, repeat=True, **kw)
    kd_b = token_batches(rest, tokenizer, tokens=None, **kw)
    scores = B.ffn_channel_scores(parent, calib)
    target = report["models"]["child_before_kd"]["params"]
    uniform = uniform_variants(shape, target)
    torch.manual_seed(cfg.seed)
    child_u, _, _ = build_child(parent, shape, uniform, scores)
    kv = shape.layers * B.kv_bytes_per_token(shape, uniform[0], cfg.kv_dtype_bytes)
    # measured as the run measures its models: KL and tokens/s over the held-back forwards
    held_t = parent_logps(parent, held_b)
    u_before = measure("uniform", child_u, parent, held_b, kv, held_t)
    child_u, _ = distill(child_u, parent, kd_b, steps=report["kd"]["steps"], lr=cfg.kd_lr,
                         temperature=cfg.kd_temperature)
    u_after = measure("uniform_after_kd", child_u, parent, held_b, kv, held_t)

    rows = [("parent", report["models"]["parent"]),
            ("searched child", report["models"]["child_before_kd"]),
            ("searched child + KD", report["models"]["child_after_kd"]),
            (f"uniform FFN {uniform[0].ffn_width}", u_before),
            (f"uniform FFN {uniform[0].ffn_width} + KD", u_after)]
    print(f"{'model':28} {'params':>12} {'KV B/token':>11} {'CPU tok/s':>10} {'KL':>9}")
    for name, m in rows:
        print(f"{name:28} {m['params']:>12,} {m['kv_bytes_per_token']:>11,} "
              f"{m['cpu_tokens_per_s']:>10,.0f} {m['kl_to_parent']:>9.4f}")
    s_b, s_a = rows[1][1]["kl_to_parent"], rows[2][1]["kl_to_parent"]
    print(f"\nKL uniform / searched: before KD {u_before['kl_to_parent'] / max(s_b, 1e-12):.2f}x,"
          f" after {report['kd']['steps']} KD steps {u_after['kl_to_parent'] / max(s_a, 1e-12):.2f}x")
    print("chosen: " + " ".join(x["variant"] for x in report["layers"]))
    if report.get("fusion"):
        print(f"fusion: {report['fusion']}")
    print(f"searched run {searched_s:.0f} s (run {record.run_id}), "
          f"calibration {report['calibration']['tokens']} tokens, "
          f"held back {report['calibration']['held_back_tokens']}, torch threads "
          f"{torch.get_num_threads()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": dict(rows), "report": report,
                                         "floor_s": floor}, indent=1))


def _forward_seconds(parent, batches) -> float:
    """Wall time of one parent forward over ``batches`` (after one warm-up batch)."""
    import torch

    with torch.no_grad():
        parent(input_ids=batches[0], use_cache=False)
        t0 = time.perf_counter()
        for ids in batches:
            parent(input_ids=ids, use_cache=False)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
