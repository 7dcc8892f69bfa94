"""What every command needs from the root group: the store and the quiet flag.

Kept apart from ``cli.py`` so the command modules never import the root group (the root
imports them and adds their commands: no import cycle).
"""

from __future__ import annotations

import re
from pathlib import Path

import click


def get_store(ctx: click.Context, *, create: bool = False, reader: bool = False):
    """The store of ``--store`` / ``$THINKFORGE_STORE``.

    Commands that only read (``create=False``) refuse a local store directory that does not
    exist, instead of answering about an empty store: a mistyped ``--store`` is an error.
    ``reader``: a ``StoreReader`` (no writer methods; it does not import pyarrow, so
    `thinkforge sql` starts faster).
    """
    from thinkforge.manifests.errors import NotFoundError

    if reader:
        from thinkforge.manifests.store import StoreReader as DatasetStore
    else:
        from thinkforge.manifests import DatasetStore

    path = ctx.find_root().obj["store_path"]
    if not create and "://" not in str(path) and not Path(path).is_dir():
        raise NotFoundError(f"no store at {path}",
                            hint="create one with `thinkforge import FILE --name NAME`, or pass "
                                 "--store DIR (or set $THINKFORGE_STORE)")
    return DatasetStore(path)


def is_quiet(ctx: click.Context) -> bool:
    return bool(ctx.find_root().obj["quiet"])


_UNQUOTED_HYPHEN = re.compile(r'(?<!["\w@-])([A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)+)(?!["\w-])')


def run_store_sql(store, query: str, **options):
    """``thinkforge.manifests.sql.run_sql`` (the read-only sandbox), with a hint when the query
    names a hyphenated dataset without quotes (`FROM gsm8k-sft` is `gsm8k - sft` in SQL)."""
    from thinkforge.manifests.errors import InputDataError
    from thinkforge.manifests.sql import run_sql

    try:
        return run_sql(store, query, **options)
    except InputDataError as exc:
        names = set(store.names()) if store.datasets_dir.is_dir() else set()
        bare = _strip_strings(query)
        hyphenated = [m for m in _UNQUOTED_HYPHEN.findall(bare) if m.split("@")[0] in names]
        if not hyphenated:
            raise
        raise InputDataError(str(exc).split("\n  hint:")[0],
                             hint=f'quote hyphenated names: "{hyphenated[0]}" (in SQL, '
                                  f"{hyphenated[0]} without quotes is a subtraction)") from exc


def _strip_strings(query: str) -> str:
    """The query without its quoted identifiers and string literals."""
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", " ", query)


def _check_name(ctx, param, value):  # a ConfigError: exit 8, as for names in recipes
    from thinkforge.manifests.store import validate_name

    return value if value is None else validate_name(value)


def _check_run_id(ctx, param, value):
    from thinkforge.manifests.store import validate_run_id

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


class RegistryChoice(click.Choice):
    """``click.Choice`` over a registry's names, read when the option is used (parsing or
    help), so the CLI never keeps its own copy of the list and stays fast to import."""

    def __init__(self, load):
        self._load = load
        super().__init__([])

    @property
    def choices(self):
        return tuple(self._load())

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns it; the registry is the source
        pass


def export_formats() -> list[str]:
    from thinkforge.curation.export_formats import format_names

    return format_names()
