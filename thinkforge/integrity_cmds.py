"""Signing keys and the publish log's head (docs/integrity.md)."""

from __future__ import annotations

import click

from .context import get_store
from .output import log, print_json


@click.group("keys")
def keys_cmd():
    """The ed25519 key that signs every version you publish (kept outside the store).

    \b
    Example:
      thinkforge keys init
      thinkforge keys show
    """


@keys_cmd.command("init")
@click.pass_context
def keys_init(ctx):
    """Create the signing key: $THINKFORGE_KEY, else ~/.config/thinkforge/signing-key.pem
    (0600). Every publish signs its manifest with it from now on; give the .pub file to
    whoever checks versions (`verify --trusted-key`, `pull --trusted-key`).

    \b
    Example:
      thinkforge keys init
      thinkforge verify --all --trusted-key ~/.config/thinkforge/signing-key.pem.pub
    """
    from pathlib import Path

    from thinkforge.manifests.signing import init_key

    private, public, kid = init_key(Path(ctx.find_root().obj["store_path"]))
    click.echo(str(public))
    if not ctx.obj["quiet"]:
        log(f"created signing key {kid}: private {private} (keep it secret, outside the store), "
            f"public {public}")


@keys_cmd.command("show")
def keys_show():
    """Print this user's public key (`ed25519 <hex>`), the value --trusted-key takes.

    \b
    Example:
      thinkforge keys show > trusted.pub
    """
    from thinkforge.manifests.errors import NotFoundError
    from thinkforge.manifests.signing import key_id, key_path, local_public

    raw = local_public()
    if raw is None:
        raise NotFoundError(f"no signing key at {key_path()}", hint="create one: thinkforge keys init")
    click.echo(f"ed25519 {raw.hex()}")
    log(f"key id {key_id(raw)}")


@click.group("log")
def log_cmd():
    """The publish log: one chained line per published version.

    \b
    Example:
      thinkforge log head
    """


@log_cmd.command("head")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def log_head(ctx, as_json):
    """Print the publish log's head (sha256 of its last line), after checking the chain.

    Keep it outside the store (a training config, a run record): `thinkforge verify
    --expect-head HASH` later refuses a log that no longer holds it, i.e. a rewritten chain.

    \b
    Example:
      HEAD=$(thinkforge log head)
      thinkforge verify --all --expect-head "$HEAD"
    """
    from thinkforge.manifests.integrity import PublishLog

    head, entries = PublishLog(get_store(ctx)).head()
    if as_json:
        print_json({"head": head, "entries": entries})
        return
    click.echo(head)
    if not ctx.obj["quiet"]:
        log(f"{entries} entr{'y' if entries == 1 else 'ies'} in the publish log")


COMMANDS = (keys_cmd, log_cmd)
