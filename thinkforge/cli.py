"""`thinkforge`: one verb per capability (DESIGN §10).

Stdout is data, stderr is logs, progress and errors.  Exit codes: see `thinkforge
--help` and ``manifests.errors.EXIT_CODES``.  Heavy packages are imported inside the
command that needs them, so `thinkforge sql` starts fast.
"""

from __future__ import annotations

import sys

import click

from manifests import __version__
from manifests.errors import EXIT_CODES, ForgeError

EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())


class ForgeGroup(click.Group):
    """Turns ForgeError into a message on stderr and its documented exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ForgeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted (Ctrl-C); nothing was published", err=True)
            sys.exit(130)


@click.group(cls=ForgeGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="thinkforge")
@click.option("--store", envvar="THINKFORGE_STORE", default="./forge-store", show_default=True,
              help="Store directory (or $THINKFORGE_STORE).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output on stderr.")
@click.pass_context
def cli(ctx: click.Context, store: str, quiet: bool) -> None:
    """Build post-training datasets for reasoning LLMs as immutable, checksummed versions.

    \b
    Example:
      thinkforge import data/gsm8k.jsonl --name gsm8k --preset gsm8k
      thinkforge sql "SELECT category, count(*) FROM gsm8k GROUP BY ALL"
    """
    ctx.obj = {"store_path": store, "quiet": quiet}


def get_store(ctx: click.Context):
    from manifests import DatasetStore

    return DatasetStore(ctx.obj["store_path"])


def load_commands() -> None:
    """Import the modules that register commands on `cli` (kept out of module import time)."""
    from . import commands  # noqa: F401
    from . import generate_cmds  # noqa: F401
    from . import filter_cmds  # noqa: F401
    from . import curation_cmds  # noqa: F401
    from . import train_cmds  # noqa: F401

    validate_names_and_run_ids(cli)


def _check_name(ctx, param, value):  # a ConfigError: exit 8, as for names in recipes
    from manifests.store import validate_name

    return value if value is None else validate_name(value)


def _check_run_id(ctx, param, value):
    from manifests.store import validate_run_id

    return value if value is None else validate_run_id(value)


_VALIDATORS = {"name": _check_name, "run_id": _check_run_id}


def validate_names_and_run_ids(command: click.Command) -> None:
    """Every ``--name`` and ``--run-id`` of every command is checked while click parses the
    command line, before any work (a name reaches the filesystem through the default run
    id; a run id is a directory under <store>/runs/)."""
    for param in command.params:
        check = _VALIDATORS.get(param.name or "")
        if isinstance(param, click.Option) and check and param.callback is None:
            param.callback = check
    for sub in getattr(command, "commands", {}).values():
        validate_names_and_run_ids(sub)


def main() -> None:
    load_commands()
    cli(prog_name="thinkforge")
