"""`thinkforge filter ...`: the DuckDB filter steps (DESIGN §5), one subcommand each.

Every subcommand writes one new version (`--name`), prints its reference on stdout (or the
manifest with `--json`), shows its phases' progress and logs counts on stderr (`-q`: quiet),
and accepts `--dry-run` (say what would run,
write nothing) and `--memory-limit` / `--temp-dir` (DuckDB spills beyond the limit).
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from .cli import cli, get_store
from .output import log, print_json, print_published


@cli.group("filter")
def filter_group() -> None:
    """Filter steps: pass rate, curriculum, quality, dedup, decontamination.

    \b
    Example:
      thinkforge filter passrate --rollouts gsm8k-rollouts --name gsm8k-pool
      thinkforge filter curriculum gsm8k-pool --name gsm8k-curriculum --batch-size 64
    """


def step_options(func):
    """The options every filter subcommand shares."""
    @click.option("--name", required=True, help="Name of the output dataset.")
    @click.option("--memory-limit", help="DuckDB memory limit, e.g. 2GiB (spills beyond it).")
    @click.option("--temp-dir", type=click.Path(path_type=Path),
                  help="Where DuckDB spills (default: a temporary directory in the store).")
    @click.option("--dry-run", is_flag=True, help="Print what would run; write nothing.")
    @click.option("--json", "as_json", is_flag=True, help="Print the manifest (or plan) as JSON.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    return wrapper


def _resources(ctx, memory_limit, temp_dir):
    from filters.base import Resources

    return Resources(memory_limit=memory_limit, temp_directory=temp_dir,
                     progress=not ctx.obj["quiet"])


def _config(cls, **values):
    """Build a pydantic config; its validation errors become a ConfigError (exit code 8)."""
    from pydantic import ValidationError

    from manifests.errors import ConfigError

    try:
        return cls(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"invalid {cls.__name__}: {problems}",
                          hint="see `thinkforge filter <step> --help`") from None


def _finish(ctx, store, plan_args, run, as_json, dry_run):
    """Dry run: print the plan. Otherwise run, print the ref (or manifest) and log counts."""
    from filters.base import plan_step

    if dry_run:
        plan = plan_step(store, *plan_args)
        if as_json:
            print_json(plan.to_dict())
        else:
            info = plan.to_dict()
            click.echo(f"would write {info['name']} ({info['kind']}) from "
                       f"{', '.join(info['inputs'])} with {info['step']}"
                       + (f"; reuses {info['reuses']}" if info["reuses"] else ""))
        return
    manifest = run()
    print_published(manifest, as_json)
    if not ctx.obj["quiet"]:
        log(f"{manifest.ref}: kept {manifest.rows} rows, rejected {manifest.rejected.rows} "
            f"{manifest.rejected.by_reason or ''}".rstrip())


def _floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None


@filter_group.command("passrate")
@click.option("--rollouts", required=True, help="Rollouts version (K samples per prompt).")
@click.option("--prompts", help="Prompts version (default: the rollouts' prompts parent).")
@click.option("--drop-at-or-above", type=float, default=0.75, show_default=True,
              help="Drop prompts with pass rate >= this (the paper's pre-filter).")
@click.option("--keep-all", is_flag=True, help="Drop no pass rate (turns the 0.75 filter off).")
@click.option("--drop-unsolved", is_flag=True, help="Also drop prompts with pass rate 0.")
@click.option("--buckets", default="0,0.25,0.5,0.75,1", show_default=True,
              help="Bucket edges (labels like 0.25-0.50; pass rate 0 is 'unsolved').")
@click.option("--min-samples", type=int, default=1, show_default=True,
              help="Drop prompts with fewer rollouts of known correctness.")
@click.option("--reasoning", type=click.Choice(["on", "off"]), help="Count only this mode.")
@step_options
@click.pass_context
def passrate_cmd(ctx, rollouts, prompts, drop_at_or_above, keep_all, drop_unsolved, buckets,
                 min_samples, reasoning, name, memory_limit, temp_dir, dry_run, as_json):
    """Pass rate per prompt from rollouts -> an rl_pool version with difficulty buckets.

    Rejected prompts (too_easy, unsolved, no_rollouts, ...) are kept in rejected/;
    prompts the rollouts never sampled (--limit) are counted as not_sampled.

    \b
    Example:
      thinkforge filter passrate --rollouts gsm8k-rollouts --name gsm8k-pool
      thinkforge filter passrate --rollouts r@v2 --prompts gsm8k --drop-unsolved --name pool
    """
    from filters.base import require_kind
    from filters.passrate import PassRateConfig, prompts_of, run_passrate

    store = get_store(ctx)
    config = _config(PassRateConfig, drop_at_or_above=None if keep_all else drop_at_or_above,
                     drop_unsolved=drop_unsolved, buckets=_floats(buckets),
                     min_samples=min_samples, reasoning=reasoning)
    if keep_all:
        config.drop_at_or_above = None
    r = store.resolve(rollouts)
    require_kind(r, "rollouts", role="--rollouts")  # before looking for its prompts parent
    p = store.resolve(prompts) if prompts else prompts_of(store, r)
    _finish(ctx, store, (name, "rl_pool", "filter.passrate", config, [r, p]),
            lambda: run_passrate(store, r, p, name, config, _resources(ctx, memory_limit, temp_dir)),
            as_json, dry_run)


@filter_group.command("curriculum")
@click.argument("pool")
@click.option("--batch-size", type=int, required=True, help="Rows per batch (fixed).")
@click.option("--sigma", type=float, default=0.05, show_default=True,
              help="Gaussian width, as a fraction of the pool's rows.")
@click.option("--schedule", type=click.Choice(["linear", "cosine"]), default="linear",
              show_default=True, help="How the centre moves from easy to hard.")
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle seed.")
@step_options
@click.pass_context
def curriculum_cmd(ctx, pool, batch_size, sigma, schedule, seed, name, memory_limit, temp_dir,
                   dry_run, as_json):
    """Order an rl_pool easy -> hard by progressive batching (curriculum_batch, _position).

    \b
    Example:
      thinkforge filter curriculum gsm8k-pool --name gsm8k-curriculum --batch-size 64
      thinkforge filter curriculum pool@v2 --name cur --batch-size 256 --sigma 0.1 --schedule cosine
    """
    from filters.curriculum import CurriculumConfig, run_curriculum

    store = get_store(ctx)
    config = _config(CurriculumConfig, batch_size=batch_size, sigma=sigma, schedule=schedule,
                     seed=seed)
    m = store.resolve(pool)
    _finish(ctx, store, (name, "rl_pool", "filter.curriculum", config, [m]),
            lambda: run_curriculum(store, m, name, config, _resources(ctx, memory_limit, temp_dir)),
            as_json, dry_run)


@filter_group.command("quality")
@click.argument("data")
@click.option("--rules", help="Comma-separated rules (default: empty,truncated,think_format,"
                              "boxed,length; also: language).")
@click.option("--max-tokens-on", type=int, default=32768, show_default=True,
              help="Token cap for reasoning ON answers.")
@click.option("--max-tokens-off", type=int, default=8192, show_default=True,
              help="Token cap for reasoning OFF answers.")
@click.option("--languages", default="en", show_default=True,
              help="Accepted languages for the language rule (needs the `lang` extra).")
@click.option("--pairs", type=click.Choice(["keep-whole", "drop-whole", "independent"]),
              help="sft ON/OFF pairs: drop-whole (default for paired versions: a pair is "
                   "kept only if both rows pass), keep-whole, independent.")
@step_options
@click.pass_context
def quality_cmd(ctx, data, rules, max_tokens_on, max_tokens_off, languages, pairs, name,
                memory_limit, temp_dir, dry_run, as_json):
    """Drop answers that break format, length, truncation or language rules (sft, rollouts).

    \b
    Example:
      thinkforge filter quality gsm8k-sft --name gsm8k-sft-clean
      thinkforge filter quality gsm8k-sft --rules think_format,truncated --name sft-fmt
      thinkforge filter quality gsm8k-sft --pairs independent --name sft-rows
    """
    from filters.quality import QualityConfig, run_quality

    store = get_store(ctx)
    config = _config(QualityConfig, rules=[r.strip() for r in rules.split(",")] if rules else None,
                     max_tokens_on=max_tokens_on, max_tokens_off=max_tokens_off,
                     languages=[x.strip() for x in languages.split(",")], pairs=pairs)
    m = store.resolve(data)
    _finish(ctx, store, (name, m.kind, "filter.quality", config, [m]),
            lambda: run_quality(store, m, name, config, _resources(ctx, memory_limit, temp_dir)),
            as_json, dry_run)


@filter_group.command("dedup")
@click.argument("data")
@click.option("--exact/--no-exact", default=True, show_default=True,
              help="Remove identical normalised texts.")
@click.option("--near/--no-near", default=True, show_default=True,
              help="Remove near duplicates (MinHash + LSH).")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="Jaccard threshold for near duplicates.")
@click.option("--num-perm", type=int, default=128, show_default=True, help="MinHash permutations.")
@click.option("--shingle", type=int, default=5, show_default=True, help="Words per shingle.")
@click.option("--on", "on", type=click.Choice(["input", "output"]), default="input",
              show_default=True, help="Which text to compare.")
@click.option("--pairs", type=click.Choice(["keep-whole", "drop-whole", "independent"]),
              help="sft ON/OFF pairs: drop-whole (default for paired versions: a pair is "
                   "kept only if both rows pass), keep-whole, independent.")
@step_options
@click.pass_context
def dedup_cmd(ctx, data, exact, near, threshold, num_perm, shingle, on, pairs, name,
              memory_limit, temp_dir, dry_run, as_json):
    """Remove exact and near-duplicate rows, keeping the smallest id of each group.

    \b
    Example:
      thinkforge filter dedup gsm8k --name gsm8k-dedup
      thinkforge filter dedup gsm8k-sft --on output --threshold 0.7 --name sft-dedup
    """
    from filters.dedup import DedupConfig, run_dedup

    store = get_store(ctx)
    config = _config(DedupConfig, exact=exact, near=near, threshold=threshold,
                     num_perm=num_perm, shingle=shingle, on=on, pairs=pairs)
    m = store.resolve(data)
    _finish(ctx, store, (name, m.kind, "filter.dedup", config, [m]),
            lambda: run_dedup(store, m, name, config, _resources(ctx, memory_limit, temp_dir)),
            as_json, dry_run)


@filter_group.command("decontam")
@click.argument("data")
@click.option("--against", "against", multiple=True, required=True,
              help="Benchmark: a version (gsm8k-test) or a file (.jsonl/.json/.parquet/.csv); "
                   "repeatable.")
@click.option("--ngram", type=int, default=13, show_default=True, help="Words per n-gram.")
@click.option("--on", "on", default="input", show_default=True,
              help="Texts to check: input, output or input,output.")
@click.option("--min-matches", type=int, default=1, show_default=True,
              help="Shared n-grams with one benchmark item that make a hit.")
@click.option("--text-field", help="Text column of benchmark files (default: auto).")
@click.option("--id-field", help="Item id column of benchmark files (default: auto).")
@step_options
@click.pass_context
def decontam_cmd(ctx, data, against, ngram, on, min_matches, text_field, id_field, name,
                 memory_limit, temp_dir, dry_run, as_json):
    """Drop rows sharing word n-grams with benchmark items; each hit names the item.

    \b
    Example:
      thinkforge filter decontam gsm8k --against gsm8k-test --name gsm8k-clean
      thinkforge filter decontam gsm8k --against gsm8k-test --against data/math500.jsonl --name clean
    """
    from filters.decontam import DecontamConfig, run_decontam, step_config

    store = get_store(ctx)
    config = _config(DecontamConfig, ngram=ngram, on=[x.strip() for x in on.split(",")],
                     min_matches=min_matches, text_field=text_field, id_field=id_field)
    m = store.resolve(data)
    benchmarks = [Path(a) if Path(a).suffix and Path(a).exists() else store.resolve(a)
                  for a in against]
    versions = [b for b in benchmarks if not isinstance(b, Path)]
    files = [b for b in benchmarks if isinstance(b, Path)]
    _finish(ctx, store, (name, m.kind, "filter.decontam", step_config(config, files),
                         [m, *versions]),
            lambda: run_decontam(store, m, benchmarks, name, config,
                                 _resources(ctx, memory_limit, temp_dir)),
            as_json, dry_run)
