"""Store upkeep commands: materialize (a plain copy of a selection) and gc."""

from __future__ import annotations

import click

from .context import get_store
from .output import log, print_json


@click.command("materialize")
@click.argument("ref")
@click.option("--name", required=True, help="Dataset name of the plain copy.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_context
def materialize_cmd(ctx, ref, name, as_json):
    """Write a version's rows as a plain version (its own shards), e.g. before deleting the
    base a selection reads.  Same rows, same order, same fingerprint.

    \b
    Example:
      thinkforge materialize gsm8k-clean@v1 --name gsm8k-clean-copy
    """
    from thinkforge.manifests.maintenance import materialize

    store = get_store(ctx)
    m = materialize(store, store.resolve(ref), name)
    if as_json:
        print_json(m.model_dump(by_alias=True))
    else:
        click.echo(f"{m.ref} {m.fingerprint[:12]} ({m.rows} rows, {sum(f.bytes for f in m.files)} bytes)")


@click.command("gc")
@click.option("--apply", is_flag=True, help="Delete the files (default: only list them).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def gc_cmd(ctx, apply, as_json):
    """Find files under datasets/ that no version reads (dry run unless --apply).

    Version directories without a manifest.json (a deleted or crashed version) and stray
    files go; a shard or digests file a selection still reads stays, whatever directory
    it is in.

    \b
    Example:
      thinkforge gc
      thinkforge gc --apply
    """
    from thinkforge.manifests.maintenance import gc

    store = get_store(ctx)
    plan = gc(store, apply=apply)
    if as_json:
        print_json({"applied": apply, "bytes": plan.bytes,
                    "remove": [{"path": str(p.relative_to(store.root)), "bytes": n} for p, n in plan.remove],
                    "kept_for_selections": [str(p.relative_to(store.root))
                                            for p in plan.kept_for_selections]})
        return
    for path, n in plan.remove:
        click.echo(f"{'removed' if apply else 'would remove'} {path.relative_to(store.root)} ({n} bytes)")
    for path in plan.kept_for_selections:
        log(f"kept (a selection reads it): {path.relative_to(store.root)}")
    log(f"{len(plan.remove)} file(s), {plan.bytes} bytes {'removed' if apply else 'to remove'}"
        + ("" if apply or not plan.remove else "; run `thinkforge gc --apply` to delete them"))


COMMANDS = (materialize_cmd, gc_cmd)
