"""The curation commands: build (recipes), export, report, pull."""

from __future__ import annotations

from pathlib import Path

import click

from .context import RegistryChoice, export_formats, get_store
from .output import log, print_json


@click.command("export")
@click.argument("ref")
@click.option("--format", "fmt", required=True, type=RegistryChoice(export_formats),
              help="Target trainer format (see README 'Export and report').")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Directory to create (written atomically).")
@click.option("--split", help="Split / file name (default: the part a split step made, else train).")
@click.option("--reasoning", type=click.Choice(["auto", "on", "off", "none"]), default="auto",
              show_default=True,
              help="System turn for prompt-only rows: detailed thinking on/off, or none. "
                   "auto = on for RL prompts; for preference pairs the chosen answer's mode.")
@click.option("--data-source", help="verl: data_source for every row (default: from source).")
@click.option("--stages", type=click.IntRange(min=1),
              help="openrlhf, pool with a curriculum: also write stages/stage-NN.jsonl, one "
                   "file per curriculum stage (OpenRLHF's PPO shuffles within a run).")
@click.option("--release", help="nemotron: the `version` tag of every row, e.g. v1 "
                                "(default: the version's own vN).")
@click.option("--used-in-training", help="nemotron: comma-separated model names trained on "
                                         "this version, e.g. Nano,Super (default: none known).")
@click.option("--license", "license_", help="nemotron: licence of rows that have none "
                                            "(else 'unknown', with a warning).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out directory.")
@click.option("--dry-run", is_flag=True, help="Check everything and print what would be written.")
@click.option("--json", "as_json", is_flag=True, help="Print the export manifest as JSON.")
@click.pass_context
def export_cmd(ctx, ref, fmt, out, split, reasoning, data_source, stages, release,
               used_in_training, license_, overwrite, dry_run, as_json):
    """Export a version for a trainer, after checking every shard's sha256.

    Prints the output directory; `.thinkforge-export.json` inside it records the source
    version and fingerprint. GRPO, verl and OpenRLHF exports keep curriculum order.

    \b
    Example:
      thinkforge export demo-sft-train --format trl-prompt-completion --out exports/sft
      thinkforge export demo-rl --format verl --out exports/verl
      thinkforge export demo-rl --format openrlhf --out exports/orl   # prints the flags
      thinkforge export demo-rl --format openrlhf --out exports/orl --stages 4
    """
    from thinkforge.curation.export import export_version, plan_export

    if dry_run:
        print_json(plan_export(get_store(ctx), ref, fmt, out, split=split, overwrite=overwrite))
        return
    record = export_version(get_store(ctx), ref, fmt, out, split=split, reasoning=reasoning,
                            data_source=data_source, overwrite=overwrite, stages=stages,
                            release=release, license=license_,
                            used_in_training=[n.strip() for n in used_in_training.split(",")
                                              if n.strip()] if used_in_training else None)
    if as_json:
        print_json(record)
    else:
        click.echo(str(out))
    if not ctx.obj["quiet"]:
        log(f"exported {record['rows']} rows of {record['source']['ref']} as {fmt} to {out}")
    for note in record.get("trainer_notes", []):  # what to pass the trainer: always shown
        log(note)


@click.command("pull")
@click.argument("ref")
@click.option("--to", "to", required=True, type=click.Path(path_type=Path),
              help="Directory to copy into (it becomes a store: DIR/datasets/NAME/VERSION).")
@click.option("--trusted-key", "trusted", multiple=True, metavar="PUB",
              help="Refuse the version unless it is signed by this ed25519 public key "
                   "(docs/integrity.md); repeatable.")
@click.pass_context
def pull_cmd(ctx, ref, to, trusted):
    """Verify a version's sha256 and copy it (manifest, data, rejected rows) elsewhere.

    \b
    Example:
      thinkforge pull demo-rl@v1 --to /scratch/data
      thinkforge --store /scratch/data verify demo-rl@v1
    """
    from thinkforge.curation.export import pull_version
    from thinkforge.manifests import DatasetStore

    store = get_store(ctx)
    manifest = store.resolve(ref)
    there = DatasetStore(to).version_dir(manifest) / "manifest.json"
    already = there.is_file()
    from thinkforge.manifests.signing import parse_public

    dest = pull_version(store, ref, to, trusted_keys=[parse_public(t) for t in trusted] or None)
    click.echo(str(dest))
    if not ctx.obj["quiet"]:
        log(f"{manifest.ref} was already in {dest} (same fingerprint, sha256 verified): nothing "
            "copied" if already else f"pulled and verified {manifest.ref} into {dest}")


@click.command("report")
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
    from thinkforge.curation.report import write_report

    written = write_report(get_store(ctx), ref, out)
    if as_json:
        print_json(written)
    else:
        click.echo(written["html"])
    if not ctx.obj["quiet"]:
        log(f"report for {written['ref']}: {written['card']}, {len(written['plots'])} plots")


@click.command("build")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and print the plan: which steps would run "
                                              "and which existing versions they would reuse.")
@click.option("--force", is_flag=True, help="Rebuild every step, even when a matching version exists.")
@click.option("--skip-train", is_flag=True, envvar="SKIP_TRAIN",
              help="Leave out the train.* steps (data only); also SKIP_TRAIN=1.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcomes as JSON.")
@click.pass_context
def build_cmd(ctx, recipe, dry_run, force, skip_train, as_json):
    """Build dataset versions from a YAML recipe (import -> generate -> filter -> mix -> split).

    A step whose resolved config and input fingerprints match an existing version is
    reused, so rerunning an unchanged recipe changes nothing and a build that failed
    midway continues from the failed step. Ends with the reports and SQL to try.

    \b
    Example:
      thinkforge build recipes/demo.yaml --dry-run
      thinkforge build recipes/demo.yaml
      thinkforge --store /data/forge build recipes/llama-nemotron.yaml --force
    """
    from thinkforge.curation.recipe import load_recipe
    from thinkforge.curation.recipe_build import build_recipe, outputs_by_name, plan_recipe

    store = get_store(ctx, create=True)
    quiet = ctx.obj["quiet"]
    parsed, steps = load_recipe(recipe)
    if skip_train:
        steps = [s for s in steps if not s.spec.type.startswith("train.")]
        parsed.steps = [s.spec for s in steps]
    if dry_run:
        outcomes = plan_recipe(store, parsed, steps, force=force)
    else:
        outcomes = build_recipe(store, parsed, steps, force=force, quiet=quiet,
                                log=(lambda _: None) if quiet else log)
    reports = []
    if not dry_run and parsed.report:
        from thinkforge.curation.report import write_report

        produced = outputs_by_name(outcomes)
        for name in parsed.report.versions:
            if name not in produced:
                from thinkforge.manifests.errors import ConfigError

                raise ConfigError(f"report.versions: {name!r} is not an output of this recipe",
                                  hint=f"outputs: {', '.join(produced)}")
            folder = Path(parsed.report.dir) if parsed.report.dir else store.root / "reports"
            reports.append(write_report(store, produced[name], folder / name))
    if as_json:
        print_json({"recipe": parsed.name, "dry_run": dry_run,
                    "steps": [o.to_dict() for o in outcomes], "reports": reports,
                    "queries": parsed.queries})
        _print_warnings(outcomes)
        return
    from .output import print_table

    print_table([{"step": o.label, "status": o.status,
                  "outputs": ", ".join(f"{ref or n}" + (f" ({o.rows[n]} rows)" if n in o.rows else "")
                                       for n, ref in o.outputs.items())} for o in outcomes],
                title=f"recipe {parsed.name}" + (" (dry run)" if dry_run else ""))
    for written in reports:
        click.echo(f"report: {written['html']}  (card: {written['card']})")
    _print_warnings(outcomes)
    if parsed.queries and not dry_run:
        click.echo("try:")
        for query in parsed.queries:
            click.echo(f"  thinkforge --store {store.root} sql {_shell_quote(query)}")


def _print_warnings(outcomes) -> None:
    """After the table (not scrolled away), also with -q and --json: stderr is for them."""
    for outcome in outcomes:
        for warning in outcome.warnings:
            click.echo(f"warning: {warning}", err=True)


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)

COMMANDS = (export_cmd, pull_cmd, report_cmd, build_cmd)
