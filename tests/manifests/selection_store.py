"""A store holding two small prompt versions and a selection version (`filter dedup`), for
the tests that read manifests and query views the way `thinkforge sql` does."""

from __future__ import annotations

import pyarrow as pa
from click.testing import CliRunner

ROWS = pa.table({"id": ["a", "b", "c"], "source": ["s"] * 3, "category": ["math", "code", "math"],
                 "input": [[{"role": "user", "content": "hi"}]] * 3, "verifier": ["none"] * 3})


def fill(store) -> None:
    """gsm8k and other (3 rows, 1 rejected each), then gsm8k-dedup: a selection version."""
    for name in ("gsm8k", "other"):
        with store.writer(name, "prompts", step={"type": "t"}) as w:
            w.write(ROWS)
            w.reject(ROWS.slice(0, 1), reason="test")
    from thinkforge.cli import cli, load_commands

    load_commands()
    made = CliRunner().invoke(cli, ["--store", str(store.root), "-q", "filter", "dedup", "gsm8k",
                                    "--name", "gsm8k-dedup"])
    assert made.exit_code == 0, made.output
    assert store.resolve("gsm8k-dedup").selection is not None
