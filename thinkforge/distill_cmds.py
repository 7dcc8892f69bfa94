"""`thinkforge train distill`: Puzzle-style NAS distillation (trainers/distill)."""

from __future__ import annotations

from pathlib import Path

import click

from .context import get_store
from .options import config_options, read_config_file
from .output import log, print_json
from .train_cmds import train_group

_SKIP = {"budgets"}


def _distill_params() -> list[click.Parameter]:

    params: list[click.Parameter] = [
        click.Option(["--data"], required=True,
                     help="Dataset reference (name, name@v3) or a pulled manifest.json path; "
                          "its text calibrates, scores, distils and (every 5th row) evaluates."),
        click.Option(["--model"], required=True,
                     help="Parent: a local Llama-family folder or `smollm2-135m` (embedded)."),
        click.Option(["--output"], required=True, type=click.Path(path_type=Path),
                     help="Directory for the child checkpoint and distill_report.json."),
        click.Option(["--budget", "budget"], multiple=True, metavar="KEY=VALUE",
                     help="params=0.6 (fraction of the parent's parameters, or a count > 1), "
                          "kv=0.5 (KV-cache bytes/token), time=0.7 or throughput=1.5 (measured "
                          "block CPU time); repeatable, all must hold. [default: params=0.6]"),
        click.Option(["--config", "config_file"], type=click.Path(path_type=Path, exists=True),
                     help="YAML file with any of the options below (flags override it)."),
        click.Option(["--reuse"], is_flag=True,
                     help="Return a finished run with the same data, parent and config instead."),
        click.Option(["--dry-run"], is_flag=True,
                     help="Verify the data, print the resolved config and the block library."),
        click.Option(["--json", "as_json"], is_flag=True, help="Print the run record as JSON."),
    ]
    return params + [option for option, _, _ in _config_fields()]


def _config_fields():
    """(option, field path, parse) per DistillConfig field: the same derivation as every
    step command's options (thinkforge.step_cmds)."""
    from thinkforge.trainers.distill.config import DistillConfig

    return [f for f in config_options(DistillConfig) if f[1][0] not in _SKIP]


def _config(config_file: Path | None, flags: dict, budgets: tuple[str, ...]):
    from pydantic import ValidationError

    from thinkforge.manifests.errors import ConfigError
    from thinkforge.trainers.distill.config import DistillConfig, parse_budgets

    values = read_config_file(config_file)
    values.update(flags)
    if budgets:
        values["budgets"] = parse_budgets(budgets)
    try:
        return DistillConfig(**values)
    except ValidationError as exc:
        raise ConfigError(f"invalid distill config: {exc.errors()[0]['loc']}: "
                          f"{exc.errors()[0]['msg']}",
                          hint="see `thinkforge train distill --help`") from exc


def _distill_callback(**kwargs):
    ctx = click.get_current_context()
    flags = {path[0]: parse(kwargs[option.name]) for option, path, parse in _config_fields()
             if kwargs.get(option.name) not in (None, ())}
    cfg = _config(kwargs["config_file"], flags, kwargs["budget"])
    store = get_store(ctx)
    quiet = ctx.obj["quiet"]
    if kwargs["dry_run"]:
        from thinkforge.trainers.base import resolve_model_path
        from thinkforge.trainers.data import open_data
        from thinkforge.trainers.distill.blocks import Shape, default_align, library
        from thinkforge.trainers.distill.run import KINDS, resolved

        data = open_data(store, kwargs["data"], KINDS)
        from transformers import AutoConfig

        shape = Shape.of(AutoConfig.from_pretrained(resolve_model_path(kwargs["model"])))
        variants = library(shape, align=cfg.ffn_align or default_align(shape.intermediate),
                           attention_removal=cfg.attention_removal,
                           kv_reduction=cfg.kv_reduction, ffn_removal=cfg.ffn_removal)
        print_json({"method": "distill", "data": data.ref,
                    "fingerprint": data.manifest.fingerprint, "rows": data.manifest.rows,
                    "verified": True, "output": str(kwargs["output"]),
                    "config": resolved(cfg, kwargs["model"]),
                    "parent": {"layers": shape.layers, "hidden": shape.hidden,
                               "ffn": shape.intermediate, "kv_heads": shape.kv_heads},
                    "variants_per_layer": [v.key for v in variants]})
        return
    from thinkforge.trainers.distill.run import train_distill

    record = train_distill(store, kwargs["data"], kwargs["model"], kwargs["output"], cfg,
                           log=(lambda _: None) if quiet else log, reuse=kwargs["reuse"])
    if kwargs["as_json"]:
        print_json(record.model_dump())
    else:
        click.echo(record.run_id)


train_group.add_command(click.Command(
    "distill", callback=_distill_callback, params=_distill_params(),
    help="Puzzle-style NAS distillation: a smaller DeciLM child of a Llama-family parent.\n\n"
         "Per layer, variants (attention kept / fewer KV heads / removed; FFN 100/75/50/25 % "
         "by channel contribution / removed) are scored by the KL to the parent when each "
         "alone replaces its block; an exact MIP picks one per layer under the budgets; "
         "--ffn-fusion fuses runs of attention-free blocks; knowledge distillation (KL on "
         "logits) follows. Writes the child (transformers loads it with trust_remote_code), "
         "distill_report.json and a run record.\n\n\b\nExample:\n"
         "  thinkforge train distill --data demo-sft-train --model smollm2-135m "
         "--budget params=0.6 --ffn-fusion --output out/child"))


COMMANDS = ()  # `distill` is added to the `train` group above
