"""The curation commands: build (recipes), export, report, pull."""

from __future__ import annotations

from pathlib import Path

import click

from .cli import cli, get_store
from .output import log, print_json

EXPORT_FORMATS = ["trl-sft", "trl-prompt-completion", "trl-grpo", "trl-dpo", "verl", "openrlhf",
                  "nemotron", "hf"]


@cli.command("export")
@click.argument("ref")
@click.option("--format", "fmt", required=True, type=click.Choice(EXPORT_FORMATS),
              help="Target trainer format (see README 'Export and report').")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Directory to create (written atomically).")
@click.option("--split", help="Split / file name (default: the part a split step made, else train).")
@click.option("--reasoning", type=click.Choice(["auto", "on", "off", "none"]), default="auto",
              show_default=True,
              help="System turn for prompt-only rows: detailed thinking on/off, or none. "
                   "auto = on for RL prompts, none for preference pairs.")
@click.option("--data-source", help="verl: data_source for every row (default: from source).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the export manifest as JSON.")
@click.pass_context
def export_cmd(ctx, ref, fmt, out, split, reasoning, data_source, overwrite, as_json):
    """Export a version for a trainer, after checking every shard's sha256.

    Prints the output directory; `.thinkforge-export.json` inside it records the source
    version and fingerprint. GRPO, verl and OpenRLHF exports keep curriculum order.

    \b
    Example:
      thinkforge export demo-sft-train --format trl-sft --out exports/sft
      thinkforge export demo-rl --format verl --out exports/verl
      thinkforge export demo-rl --format openrlhf --out exports/orl   # prints the flags
    """
    from curation.export import export_version

    record = export_version(get_store(ctx), ref, fmt, out, split=split, reasoning=reasoning,
                            data_source=data_source, overwrite=overwrite)
    if as_json:
        print_json(record)
    else:
        click.echo(str(out))
    if not ctx.obj["quiet"]:
        log(f"exported {record['rows']} rows of {record['source']['ref']} as {fmt} to {out}")
        if "openrlhf_args" in record:
            log(f"OpenRLHF flags: {record['openrlhf_args']}")


@cli.command("pull")
@click.argument("ref")
@click.option("--to", "to", required=True, type=click.Path(path_type=Path),
              help="Directory to copy into (it becomes a store: DIR/datasets/NAME/VERSION).")
@click.pass_context
def pull_cmd(ctx, ref, to):
    """Verify a version's sha256 and copy it (manifest, data, rejected rows) elsewhere.

    \b
    Example:
      thinkforge pull demo-rl@v1 --to /scratch/data
      thinkforge --store /scratch/data verify demo-rl@v1
    """
    from curation.export import pull_version

    dest = pull_version(get_store(ctx), ref, to)
    click.echo(str(dest))
    if not ctx.obj["quiet"]:
        log(f"pulled and verified {ref} into {dest}")


@cli.command("report")
@click.argument("ref")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Directory for README.md (dataset card), report.html and plots/.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
@click.pass_context
def report_cmd(ctx, ref, out, as_json):
    """Write a dataset card (README.md) and an HTML report with plots for a version.

    Plots (only those the version's columns allow): pass-rate histogram, difficulty buckets,
    mean pass rate per curriculum batch, output lengths by reasoning mode, mix by category
    and mode, rejected rows by step and reason. Open report.html from disk; no server.

    \b
    Example:
      thinkforge report demo-rl --out reports/demo-rl
      xdg-open reports/demo-rl/report.html
    """
    from curation.report import write_report

    written = write_report(get_store(ctx), ref, out)
    if as_json:
        print_json(written)
    else:
        click.echo(written["html"])
    if not ctx.obj["quiet"]:
        log(f"report for {written['ref']}: {written['card']}, {len(written['plots'])} plots")
