"""The data commands: import, catalog, show, verify, sql, diff."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from .context import get_store, run_store_sql
from .output import log, print_json, print_published, print_table

TABLE_ROWS = 1000  # rows `sql --format table` prints when no --limit is given


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Dataset name ([a-z0-9][a-z0-9_.-]*).")
@click.option("--kind", default="prompts", show_default=True,
              type=click.Choice(["prompts", "sft", "rollouts", "preferences", "rl_pool"]),
              help="Record kind to import (validated against its schema).")
@click.option("--preset", type=click.Choice(["gsm8k", "math500", "humaneval"]),
              help="Column mapping for a known public set.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "json", "parquet", "csv", "hf"]),
              help="Input format (default: from the extension; a directory is a HF dataset).")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help='Take FIELD from COLUMN, or from a template: --map input="{title}\\n\\n{body}".')
@click.option("--category", help="Category for every row (math, code, science, chat, ...).")
@click.option("--license", "license_", help="Licence for every row.")
@click.option("--source", help="Source name (default: preset or file name); part of the prompt id.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="skip: keep bad rows in rejected/ with a reason instead of failing.")
@click.option("--on-duplicate", type=click.Choice(["fail", "first", "skip"]), default=None,
              help="Rows whose key (prompts: id) repeats an earlier row's: fail (default; says how "
                   "many in all), first (keep the first row of each key), skip (drop every row of a "
                   "repeated key). Dropped rows go to rejected/ with the first one's line. "
                   "Default: first with --on-error skip, else fail.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option("--dry-run", is_flag=True, help="Read and validate every row; write nothing.")
@click.pass_context
def import_cmd(ctx, path, name, kind, preset, fmt, maps, category, license_, source, on_error,
               on_duplicate, as_json, dry_run):
    """Import a file as a new version (prompts by default).

    \b
    Example:
      thinkforge import gsm8k_train.jsonl --name gsm8k --preset gsm8k
      thinkforge import qa.csv --name qa --map input="{title}\\n\\n{body}" --map ground_truth=answer --category math
      thinkforge import train.jsonl --name t --category math --on-duplicate first
      thinkforge import big.parquet --name big --category chat --dry-run --on-error skip
    """
    from thinkforge.curation.importer import ImportOptions, import_file, parse_map

    opts = ImportOptions(name=name, kind=kind, preset=preset, format=fmt, mapping=parse_map(maps),
                         category=category, license=license_, source=source, on_error=on_error,
                         on_duplicate=on_duplicate)
    manifest = import_file(get_store(ctx, create=True), path, opts, dry_run=dry_run,
                           progress=None if ctx.obj["quiet"] else _rows_progress(path))
    if dry_run:
        summary = {"name": manifest.name, "kind": manifest.kind, "rows": manifest.rows,
                   "rejected": manifest.rejected, "published": False}
        if as_json:
            print_json(summary)
        else:
            click.echo(f"dry run: {manifest.rows} rows would be published as {manifest.name} "
                       f"({sum(manifest.rejected.values())} rejected: {manifest.rejected or 'none'})")
        return
    print_published(manifest, as_json)
    if not ctx.obj["quiet"]:
        log(f"imported {manifest.rows} rows into {manifest.ref} "
            f"({manifest.rejected.rows} rejected) fingerprint {manifest.fingerprint[:12]}")


def _rows_progress(path: Path):
    """A stderr status line for long imports: rows so far and rows per second."""
    import time

    start = time.monotonic()
    shown = [0]

    def report(rows: int) -> None:  # called once per batch with the rows kept so far
        if rows // 500_000 > shown[0] // 500_000:
            shown[0] = rows
            rate = rows / max(1e-9, time.monotonic() - start)
            log(f"{path.name}: {rows:,} rows read ({rate:,.0f} rows/s)")

    return report


@click.group("catalog", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def catalog_cmd(ctx, as_json):
    """List every version in the store (the SQL views are named after them).

    \b
    Example:
      thinkforge catalog
      thinkforge catalog --json | jq '.[].name'
    """
    if ctx.invoked_subcommand:
        return
    from thinkforge.manifests.catalog import list_versions, refresh_catalog

    store = get_store(ctx)
    rows = list_versions(store)
    if store.datasets_dir.is_dir():
        refresh_catalog(store)
    if as_json:
        print_json(rows)
    else:
        print_table([{**{k: v for k, v in r.items() if k != "created_at"},
                      "created": r["created_at"][:16].replace("T", " "),
                      "parents": ", ".join(r["parents"])} for r in rows], title=f"store {store.root}")


@catalog_cmd.command("rebuild")
@click.pass_context
def catalog_rebuild(ctx):
    """Recreate catalog.duckdb from the manifests.

    A version whose shards are missing or damaged is left out and named on stderr (exit 4);
    every other version stays queryable.

    \b
    Example:
      thinkforge catalog rebuild
    """
    from thinkforge.manifests.catalog import catalog_problems, refresh_catalog
    from thinkforge.manifests.errors import IntegrityError

    store = get_store(ctx)
    refresh_catalog(store, force=True)
    click.echo(str(store.catalog_path))
    if problems := catalog_problems(store):
        for line in problems:
            click.echo(f"left out {line}", err=True)
        raise IntegrityError(f"{len(problems)} version(s) left out of the catalog",
                             hint="`thinkforge verify --all` shows what is wrong; restore the "
                                  "files or rebuild those versions")


@click.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
@click.option("--verify", is_flag=True, help="Check sha256 of every shard (default: sizes only).")
@click.pass_context
def show_cmd(ctx, ref, as_json, verify):
    """Show a version's manifest (rows, stats, lineage, files), or a training run record.

    \b
    Example:
      thinkforge show gsm8k@v1
      thinkforge show run-sft-demo-sft-train-20261201t210000-1a2b3c
      thinkforge show gsm8k --json
    """
    store = get_store(ctx)
    from thinkforge.manifests.training_runs import TrainingRuns

    if "@" not in ref and TrainingRuns(store).exists(ref):
        from .train_cmds import show_run

        return show_run(store, ref, as_json)
    m = store.resolve(ref)
    (store.verify if verify else store.check_sizes)(m)
    shards = f"{len(m.files)} data and {len(m.rejected.files)} rejected shard(s)"
    if m.selection is not None:
        shards = (f"the selection file{'s' if m.selection.rejected else ''} and "
                  f"{sum(1 for n in m.selection.used if n)} shard(s) of its base {m.selection.base.ref}")
    if verify:  # asked for: say it even with -q (on stderr: stdout stays the data)
        click.echo(f"verified {m.ref}: sha256 and size of {shards} match the manifest", err=True)
    elif not ctx.obj["quiet"]:
        log(f"checked sizes of {shards} (sha256 too: --verify)")
    if as_json:
        print_json(m.model_dump(by_alias=True))
        return
    print_table([{"ref": m.ref, "kind": m.kind, "rows": m.rows, "rejected": m.rejected.rows,
                  "fingerprint": m.fingerprint[:16], "created_at": m.created_at,
                  "step": m.step.type}])
    if m.parents:
        click.echo("parents: " + ", ".join(f"{p.ref} ({p.fingerprint[:12]})" for p in m.parents))
    for key, value in m.stats.items():
        click.echo(f"{key}: {json.dumps(value, default=str)}")
    if m.rejected.by_reason:
        click.echo("rejected: " + json.dumps(m.rejected.by_reason))
    for f in m.files:
        click.echo(f"{f.path}  rows={f.rows}  bytes={f.bytes}  sha256={f.sha256[:16]}")
    if (sel := m.selection) is not None:
        used = sum(1 for n in sel.used if n)
        click.echo(f"selection over {sel.base.ref} ({sel.base.fingerprint[:12]}): {sel.file.path}  "
                   f"rows={sel.file.rows}  bytes={sel.file.bytes}  sha256={sel.file.sha256[:16]}; "
                   f"reads {used} of {len(sel.base_files)} base shards"
                   + (f"; stored columns: {', '.join(sel.columns)}" if sel.columns else ""))


@click.command("verify")
@click.argument("refs", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Verify every version, and report vanished ones.")
@click.option("--cached", is_flag=True,
              help="Reuse sha256 of files unchanged since they were hashed (size, mtime, ctime, "
                   "inode); default: rehash every byte.")
@click.option("--adopt", is_flag=True,
              help="Record versions the publish log does not know (a store from an older "
                   "thinkforge, or copied by hand) after you decided to trust them; never "
                   "replaces an entry.")
@click.option("--trusted-key", "trusted", multiple=True, metavar="PUB",
              help="Refuse any version not signed by this ed25519 public key (the .pub file of "
                   "`thinkforge keys init`, or its contents); repeatable.")
@click.option("--expect-head", metavar="HASH",
              help="The publish log's head you pinned earlier (`thinkforge log head`): refuse a "
                   "log that no longer holds it (a rewritten chain).")
@click.pass_context
def verify_cmd(ctx, refs, all_, cached, adopt, trusted, expect_head):
    """Check versions against the publish log, their signatures, the sha256 of every file
    and the fingerprint of their rows.

    Each manifest must be the bytes that were published (publish log, one entry per
    version), lie in its own directory, be signed by --trusted-key when given; its shard
    paths must stay inside the version, its row counts equal the shards' Parquet metadata,
    every file's size and sha256 match, and the fingerprint recomputed from its rows equal
    the manifest's. Exit 4 if anything does not. Lines start with `ok` (signed by a key
    you trust: --trusted-key, or your own key), `signed` (by another key) or `unsigned`.
    See docs/integrity.md.

    \b
    Example:
      thinkforge verify gsm8k@v1
      thinkforge verify --all --trusted-key ~/.config/thinkforge/signing-key.pem.pub
      thinkforge verify --all --expect-head 3f2a...
    """
    from thinkforge.manifests.errors import ForgeError, IntegrityError
    from thinkforge.manifests.integrity import PublishLog
    from thinkforge.manifests.signing import key_id, local_public, parse_public

    store = get_store(ctx)
    keys = [parse_public(t) for t in trusted]
    trusted_ids = {key_id(k) for k in keys} or {key_id(k) for k in [local_public()] if k}
    log = PublishLog(store)
    if expect_head:
        after = log.check_head(expect_head)
        click.echo(f"publish log holds the pinned head; {after} entr{'y' if after == 1 else 'ies'} "
                   "appended since", err=True)
    manifests = list(store.manifests()) if all_ else [store.resolve(r) for r in refs]
    if not manifests and not all_ and not expect_head:
        raise click.UsageError("name a version (REF), pass --all, or --expect-head HASH")
    if adopt:
        for m in manifests:
            if log.adopt(m):
                click.echo(f"adopted {m.ref} into the publish log", err=True)
    entries = log.entries()
    failures = [f"MISPLACED {line}" for line in store.misplaced()] if all_ else []
    for line in failures:
        click.echo(line, err=True)
    unsigned = 0
    for m in manifests:
        try:
            signer = store.verify(m, use_cache=cached, log_entries=entries, rows=True,
                                  trusted_keys=keys or None)
        except ForgeError as exc:
            failures.append(f"FAILED {m.ref}: {exc}")
            click.echo(failures[-1], err=True)
            continue
        if m.selection is not None:
            what = (f"selection over {m.selection.base.ref}: "
                    f"{sum(1 for n in m.selection.used if n)} base shards, {m.rows} rows")
        else:
            what = f"{len(m.files)} shards, {m.rows} rows"
        if signer is None:
            unsigned += 1
            status, by = "unsigned", ""
        else:
            status = "ok" if signer in trusted_ids else "signed"
            by = f", signed by {signer}" + ("" if signer in trusted_ids else " (not a trusted key)")
        click.echo(f"{status} {m.ref} {m.fingerprint[:12]} ({what}{by})")
    if all_:
        for e in log.vanished(entries):
            failures.append(f"VANISHED {e['name']}@{e['version']} (published {e['time']}, "
                            f"fingerprint {e['fingerprint'][:12]}): its manifest is gone")
            click.echo(failures[-1], err=True)
    if unsigned and not failures:
        click.echo(f"note: {unsigned} version(s) are unsigned: the checks hold against edits that "
                   "do not rewrite the log too; sign new versions with `thinkforge keys init` and "
                   "pin the log head (`thinkforge log head`); see docs/integrity.md", err=True)
    if failures:
        raise IntegrityError(f"{len(failures)} of {len(manifests)} version(s) failed verification"
                             + (" or vanished" if any(f.startswith("VANISHED") for f in failures) else ""),
                             hint="restore the files from a backup or rebuild the versions; "
                                  "see docs/reliability.md")


@click.command("sql")
@click.argument("query", required=False)
@click.option("--file", "query_file", type=click.Path(path_type=Path),
              help="Read the query from a file ('-' = stdin); for queries too long for an argument.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]),
              default="table", show_default=True, help="json = one object per line.")
@click.option("--out", type=click.Path(path_type=Path), help="Write to a file instead of stdout.")
@click.option("--limit", type=click.IntRange(min=0), help="Stop after N rows.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              callback=lambda ctx, param, value: _finite(value, "--timeout"),
              help="Stop the query after SECONDS (exit 11; within about a second).")
@click.option("--memory-limit", metavar="SIZE",
              help="Memory limit for the whole process while the query runs, e.g. 2GB (DuckDB's "
                   "limit plus a cap on the process; queries do not spill to disk; exit 11 past it).")
@click.option("--verify", is_flag=True,
              help="Check the sha256 of every shard first (default: sizes only; hashes are "
                   "cached per file, so this is cheap after the first time).")
@click.pass_context
def sql_cmd(ctx, query, query_file, fmt, out, limit, timeout, memory_limit, verify):
    """Run a read-only SQL query over every version (DuckDB).

    Views: a dataset's latest version is named like the dataset ("gsm8k", "gsm8k-sft"),
    each version is "name@v2", rejected rows are "name@v2/rejected"; tables `versions`
    and `lineage` describe the store.  Only queries run (SELECT, WITH, DESCRIBE,
    SUMMARIZE, PIVOT, plain EXPLAIN) and they can open no file: see docs/reliability.md.
    QUERY '-' (or --file -) reads the query from stdin.

    \b
    Example:
      thinkforge sql "SELECT category, count(*) FROM gsm8k GROUP BY ALL"
      thinkforge sql "SELECT * FROM \\"gsm8k@v1\\"" --format csv --out rows.csv
      thinkforge sql --file report.sql --timeout 60 --memory-limit 4GB
      echo "SELECT count(*) FROM versions" | thinkforge sql -
    """
    from thinkforge.manifests.duck import valid_memory_limit
    from thinkforge.manifests.errors import AccessDeniedError, NotFoundError
    from thinkforge.manifests.query_limits import parse_size

    query = _read_query(query, query_file)
    if memory_limit is not None and not valid_memory_limit(memory_limit):
        raise click.BadParameter(f"{memory_limit!r} is not a size such as 2GB or 512MiB",
                                 param_hint="--memory-limit")
    if memory_limit is not None and parse_size(memory_limit) < MIN_SQL_MEMORY:
        raise click.BadParameter(f"{memory_limit!r} is too small to run a query: give at least 8MB",
                                 param_hint="--memory-limit")
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet needs --out FILE")
    if out is not None:
        if out.is_dir():
            raise NotFoundError(f"--out {out} is a directory", hint="give a file name inside it")
        if not out.parent.is_dir():
            raise NotFoundError(f"--out {out}: directory {out.parent} does not exist",
                                hint=f"create it first: mkdir -p {out.parent}")
    import os

    from thinkforge.manifests.catalog import refresh_or_warn
    from thinkforge.manifests.errors import SqlRefusedError

    store = get_store(ctx, reader=True)
    if out is not None and out.absolute().resolve().is_relative_to(store.root):
        raise SqlRefusedError(f"--out {out} is inside the store {store.root}: versions, manifests "
                              "and the catalog are written by thinkforge only",
                              hint="write the result outside the store")
    if os.access(store.root, os.W_OK):  # the catalog is for other DuckDB clients; sql does
        refresh_or_warn(store)           # not read it, so a read-only store is never touched
    result = run_store_sql(store, query, limit=limit, verify=verify, timeout=timeout,
                           memory_limit=memory_limit, owns_process=True)
    try:
        _write_sql_result(result, fmt, out, limit)
    except PermissionError as exc:
        raise AccessDeniedError(f"cannot write {exc.filename or out}: permission denied",
                                hint="choose another --out path") from None
    except OSError as exc:
        from thinkforge.manifests.errors import ResourceLimitError

        raise ResourceLimitError(f"cannot write {exc.filename or out or 'stdout'}: {exc.strerror or exc}",
                                 hint="free disk space or choose another --out path") from None


MIN_SQL_MEMORY = 8 * 10**6  # below it a query cannot even open its views


def _finite(value: float | None, option: str) -> float | None:
    import math

    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds", param_hint=option)
    return value


def _read_query(query: str | None, query_file: Path | None) -> str:
    from thinkforge.manifests.errors import InputDataError, NotFoundError

    if query is not None and query_file is not None:
        raise click.UsageError("give the query as an argument or with --file, not both")
    if query is None and query_file is None:
        raise click.UsageError("give a query: thinkforge sql \"SELECT ...\", --file Q.sql, or - for stdin")
    if query == "-" or str(query_file) == "-":
        text = sys.stdin.read()
        where = "stdin"
    elif query_file is not None:
        try:
            text = query_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(f"--file {query_file}: no such file") from None
        except IsADirectoryError:
            raise InputDataError(f"--file {query_file} is a directory",
                                 hint="give the .sql file inside it") from None
        except UnicodeDecodeError as exc:
            raise InputDataError(f"--file {query_file}: not UTF-8 text (byte {exc.start})") from None
        where = str(query_file)
    else:
        return query
    if not text.strip():
        raise click.UsageError(f"the query from {where} is empty")
    return text


def _write_sql_result(result, fmt: str, out: Path | None, limit: int | None) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        batches = result.arrow()
        tmp = out.with_name(out.name + ".tmp")
        try:
            with pq.ParquetWriter(tmp, batches.schema, compression="zstd") as writer:
                for batch in batches:
                    writer.write_batch(batch)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
        return
    if fmt == "table":
        # a terminal table is for reading: cap it unless --limit says otherwise
        cap = limit if limit is not None else TABLE_ROWS
        rows = [dict(zip(result.columns, row, strict=True))
                for _, row in zip(range(cap + 1), result.rows(), strict=False)]
        print_table(rows[:cap], columns=list(result.columns))
        if len(rows) > cap:
            log(f"(showing the first {cap} rows; --limit N shows more, --format csv|json all)")
        return
    handle = open(out, "w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        if fmt == "csv":
            writer = csv.writer(handle)
            writer.writerow(result.columns)
            for row in result.rows():
                writer.writerow([json.dumps(v, default=str) if isinstance(v, (list, dict)) else v
                                 for v in row])
        else:
            for row in result.rows():
                handle.write(json.dumps(dict(zip(result.columns, row, strict=True)), default=str,
                                        ensure_ascii=False) + "\n")
    finally:
        if out:
            handle.close()


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def diff_cmd(ctx, a, b, as_json):
    """Rows added, removed and changed (by row key) between two versions, and stat deltas.

    \b
    Example:
      thinkforge diff gsm8k@v1 gsm8k@v2
    """
    from thinkforge.curation.diff import diff_versions

    store = get_store(ctx)
    result = diff_versions(store, store.resolve(a), store.resolve(b))
    if as_json:
        print_json(result)
        return
    click.echo(f"{result['a']} -> {result['b']} ({result['kind']}, key {', '.join(result['key'])})")
    click.echo(f"rows: {result['rows']['a']} -> {result['rows']['b']} ({result['rows']['delta']:+d})")
    for what in ("added", "removed", "changed"):
        sample = result["examples"][what]
        click.echo(f"{what}: {result[what]}" + (f"  e.g. {sample}" if sample else ""))
    if result.get("changed_columns"):
        click.echo("changed columns: " + ", ".join(
            f"{column} ({n} rows)" for column, n in result["changed_columns"].items()))
    for key, delta in result["stats_delta"].items():
        click.echo(f"stats {key}: {json.dumps(delta)}")

COMMANDS = (import_cmd, catalog_cmd, show_cmd, verify_cmd, sql_cmd, diff_cmd)
