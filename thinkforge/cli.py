"""`thinkforge`: one verb per capability (docs/store.md).

Stdout is data, stderr is logs, progress and errors.  Exit codes: see `thinkforge
--help` and ``thinkforge.manifests.errors.EXIT_CODES``.  Heavy packages are imported inside the
command that needs them, so `thinkforge sql` starts fast.

The command modules define their commands (``COMMANDS``) without importing this module;
``load_commands`` adds them to the root group.  Steps registered with a CLI group that no
module defines (or top-level steps such as `mix` and `split`) appear from the registry.
"""

from __future__ import annotations

import sys

import click

from thinkforge.manifests import __version__
from thinkforge.manifests.errors import EXIT_CODES, ForgeError

from .context import validate_names_and_run_ids
from .step_cmds import StepGroup

EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
COMMAND_MODULES = ("commands", "generate_cmds", "filter_cmds", "curation_cmds", "train_cmds",
                   "distill_cmds", "store_cmds", "serve_cmds", "integrity_cmds")
FAST_MODULES = ("commands",)
LOADED: set[str] = set()  # command modules whose commands are on `cli`
# root options that may also follow the subcommand: `thinkforge sql 'SELECT 1' --store X`
GLOBAL_OPTIONS = {"--store": True, "--quiet": False, "-q": False, "--log-level": True, "--log-json": False}


def hoist_global_options(args: list[str]) -> list[str]:
    """Move root options given after the subcommand to the front (not past a `--`)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS and rest:
            takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
            front += args[i:i + 2] if takes_value else [arg]
            i += 2 if takes_value else 1
            continue
        rest.append(arg)
        i += 1
    return front + rest


class ForgeGroup(StepGroup):
    """Turns ForgeError into a message on stderr and its documented exit code; lists the
    top-level steps and step groups of the registry."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_global_options(list(args)))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ForgeError as exc:
            _error(str(exc))
            sys.exit(exc.exit_code)
        except OSError as exc:  # the machine, not the data: disk full, file-size limit, permissions
            import errno

            where = exc.filename or "a file in the store"
            text = str(exc)  # pyarrow's OSErrors carry the errno only in their text
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or \
                    "File too large" in text or "No space left" in text:
                exc.strerror = exc.strerror or ("File too large" if "File too large" in text
                                                else "No space left on device")
                _error(f"cannot write {where}: {exc.strerror} (nothing was published)\n"
                       "  hint: free disk space, raise the file-size limit (ulimit -f) or "
                       "use another --store")
                sys.exit(11)
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                _error(f"cannot write {where}: {exc.strerror} (nothing was published)\n"
                       "  hint: check the permissions of the store, or use another --store")
                sys.exit(12)
            raise
        except KeyboardInterrupt:
            _error("interrupted (Ctrl-C); nothing was published")
            sys.exit(130)
        except Exception as exc:  # DuckDB's own I/O and memory errors are no OSError
            if not _resource_error(exc):
                raise
            click.echo(f"error: {_resource_error(exc)} (nothing was published)\n  hint: free disk "
                       "space or memory, raise --memory-limit, or use another --store", err=True)
            sys.exit(11)

    def _step_groups(self) -> set[str]:
        from thinkforge.manifests.steps import load_steps

        return {d.group for d in load_steps().values() if d.group and d.derive_cli}

    def list_commands(self, ctx):
        load_commands()
        return sorted(set(super().list_commands(ctx)) | self._step_groups())

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and not LOADED.issuperset(COMMAND_MODULES):
            load_commands()  # `thinkforge sql` & co. load only their own module (fast start)
            command = super().get_command(ctx, name)
        if command is None and name in self._step_groups():
            command = StepGroup(name, help=f"{name} steps.\n\n\b\nExample:\n  thinkforge {name} "
                                           "--help")
        return command


def _resource_error(exc: BaseException) -> str | None:
    """One line for a full disk or exhausted memory met inside DuckDB (or Python), else None."""
    text = str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryException":
        return "out of memory: " + (text.strip().splitlines() or ["MemoryError"])[0][:200]
    if type(exc).__module__.lstrip("_").startswith("duckdb") and (
            "No space left" in text or "File too large" in text or "Disk quota" in text):
        return "cannot write a file in the store: No space left on device"
    return None


@click.group(cls=ForgeGroup, step_group=None, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="thinkforge")
@click.option("--store", envvar="THINKFORGE_STORE", default="./forge-store", show_default=True,
              help="Store directory (or $THINKFORGE_STORE); also accepted after the command.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output on stderr; also accepted "
                                                  "after the command.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="Messages on stderr at this level and above [default: info] (--quiet turns "
                   "off progress; this turns off messages).")
@click.option("--log-json", is_flag=True, help="Messages as JSON lines (time, level, logger, "
                                               "message), for log collectors on clusters.")
@click.pass_context
def cli(ctx: click.Context, store: str, quiet: bool, log_level: str | None, log_json: bool) -> None:
    """Build post-training datasets for reasoning LLMs as immutable, checksummed versions.

    \b
    Example:
      thinkforge import data/gsm8k.jsonl --name gsm8k --preset gsm8k
      thinkforge sql "SELECT category, count(*) FROM gsm8k GROUP BY ALL"
    """
    from .logs import configure

    configure(log_level or "info", json_lines=log_json)
    ctx.obj = {"store_path": store, "quiet": quiet}


def _error(message: str) -> None:
    """An error line on stderr, through logging (plain ``error: ...``, rich or JSON)."""
    import logging

    logging.getLogger("thinkforge.cli").error(message)


def get_store(ctx: click.Context, *, create: bool = False):
    """Kept for callers of the old location; see ``thinkforge.context.get_store``."""
    from .context import get_store as context_store

    return context_store(ctx, create=create)


def load_commands(modules: tuple[str, ...] = COMMAND_MODULES) -> None:
    """Add the commands of ``modules`` (default: all) to `cli` (kept out of import time)."""
    import importlib

    for module in modules:
        if module in LOADED:
            continue
        LOADED.add(module)
        for command in importlib.import_module(f"{__package__}.{module}").COMMANDS:
            if command.name not in cli.commands:
                cli.add_command(command)
    validate_names_and_run_ids(cli)


def main() -> None:
    # the data commands (import, catalog, show, verify, sql, diff) first: `thinkforge sql`
    # then imports nothing of the generators or trainers; any other command loads the rest
    load_commands(FAST_MODULES)
    cli(prog_name="thinkforge")
