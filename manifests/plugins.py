"""Discovery through entry points: steps, teacher backends, export formats and training
methods are found in the installed packages' metadata (docs/architecture.md, "Plugins").

Each group is ``thinkforge.<group>``.  thinkforge registers its own built-ins the same way
(pyproject.toml ``[project.entry-points."thinkforge.steps"]`` ...), so a third-party package
adds a step, backend, export or trainer with one module and one entry point and no edit
here.  What an entry point's value names:

* ``thinkforge.steps``: a module; importing it declares its steps (``register_step``);
* ``thinkforge.backends``: a teacher backend class, ``Class(BackendConfig, model)``;
* ``thinkforge.exports``: an ``ExportFormat`` object;
* ``thinkforge.trainers``: a ``TrainingMethod`` object (its config model and metadata).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from .errors import ConfigError

GROUPS = ("steps", "backends", "exports", "trainers")


@cache
def discovered(group: str) -> dict[str, EntryPoint]:
    """name -> entry point of ``thinkforge.<group>``, over every installed distribution."""
    found = {ep.name: ep for ep in entry_points(group=f"thinkforge.{group}")}
    if not any(ep.dist is not None and ep.dist.name == "thinkforge" for ep in found.values()):
        raise ConfigError(f"thinkforge's own `thinkforge.{group}` entry points are not installed "
                          "(the package metadata is older than pyproject.toml)",
                          hint="reinstall the package: pip install -e . (or `make install`)")
    return found


def load(group: str, name: str):
    """The object the entry point ``name`` of ``group`` names; a broken plugin is a one-line
    error that names it and the distribution it came from."""
    ep = discovered(group)[name]
    try:
        return ep.load()
    except Exception as exc:  # a plugin's own import error: say whose it is
        source = ep.dist.name if ep.dist is not None else "an unknown distribution"
        raise ConfigError(f"{group} plugin {name!r} ({ep.value}, from {source}) failed to load: "
                          f"{type(exc).__name__}: {exc}",
                          hint=f"fix or uninstall {source}") from exc
