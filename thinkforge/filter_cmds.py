"""`thinkforge filter ...`: the DuckDB filter steps (docs/filters.md), one subcommand each.

The subcommands are derived from the registered step descriptors of group ``filter``
(``thinkforge/step_cmds.py``): each writes one new version (`--name`), prints its reference
on stdout (or the manifest with `--json`), shows its phases' progress and logs counts on
stderr (`-q`: quiet), and accepts `--config FILE`, `--dry-run` (say what would run and
what it would reuse, write nothing) and `--memory-limit` / `--temp-dir` (DuckDB spills
beyond the limit).  A new filter module that registers its step is a new subcommand.
"""

from __future__ import annotations

import click

from .step_cmds import StepGroup


@click.group("filter", cls=StepGroup)
def filter_group() -> None:
    """Filter steps: pass rate, curriculum, quality, dedup, decontamination, ...

    Every option of a filter is a field of its config: the same key works in a recipe's
    `config:` and in a --config FILE (flags override the file).

    \b
    Example:
      thinkforge filter passrate --rollouts gsm8k-rollouts --name gsm8k-pool
      thinkforge filter curriculum gsm8k-pool --name gsm8k-curriculum --batch-size 64
    """


COMMANDS = (filter_group,)
