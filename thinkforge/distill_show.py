"""The distillation section of `thinkforge show RUN` (no torch, no trainers import)."""

from __future__ import annotations

import click


def show_distill(record) -> None:
    """The distillation section of `thinkforge show RUN`."""
    from .output import print_table

    report = record.extra.get("distill_report")
    if not report:
        return
    print_table([{"model": name, "params": m["params"], "kv_bytes/token": m["kv_bytes_per_token"],
                  "cpu_tokens/s": m["cpu_tokens_per_s"], "kl_to_parent": m["kl_to_parent"]}
                 for name, m in report["models"].items()], title="distillation")
    print_table([{"layer": x["layer"], "variant": x["variant"], "params": x["params"],
                  "kv_bytes/token": x["kv_bytes_per_token"], "kl_alone": x["kl_alone"],
                  "child_layer": x["child_layer"]} for x in report["layers"]],
                title="chosen variant per layer")
    u = report["uniform_baseline"]
    click.echo(f"uniform FFN pruning at {u['params']} params: KL {u['kl_to_parent_before_kd']} "
               f"(searched child before KD: {report['models']['child_before_kd']['kl_to_parent']})")
    if "kl_to_parent_after_kd" in u:
        click.echo(f"  after the same KD steps: KL {u['kl_to_parent_after_kd']} "
                   f"(searched child: {report['models']['child_after_kd']['kl_to_parent']})")
    if report.get("fusion"):
        f = report["fusion"]
        click.echo(f"FFN Fusion: runs {f['runs']}, KL {f['kl_before_fusion']} -> "
                   f"{f['kl_after_fusion']} (cost {f['kl_cost']})")
