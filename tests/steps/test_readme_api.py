"""The Python API page's example (docs/api.md) runs as written (on a store with gsm8k imported)."""

from __future__ import annotations

import re
from pathlib import Path

API_PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_readme_api_example_runs(tmp_path, monkeypatch, data_dir, capsys):
    import pytest

    pytest.importorskip("datasets")
    from click.testing import CliRunner

    from thinkforge.cli import cli, load_commands

    block = API_PAGE.read_text(encoding="utf-8").split("<!-- api-example:begin -->")[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THINKFORGE_STORE", raising=False)
    load_commands()
    done = CliRunner().invoke(cli, ["import", str(data_dir / "gsm8k_train_demo.jsonl"),
                                    "--name", "gsm8k", "--preset", "gsm8k", "-q"])
    assert done.exit_code == 0, done.output
    namespace: dict = {}
    exec(compile(code, "docs/api.md api-example", "exec"), namespace)  # noqa: S102
    assert namespace["v"].rows == len(namespace["df"]) == len(namespace["ds"]) == 200
    assert namespace["plan"]["outputs"] == {"gsm8k-dedup": None}
    parts = namespace["parts"]
    assert set(parts) == {"gsm8k-train", "gsm8k-validation"}
    assert sum(p.rows for p in parts.values()) == namespace["clean"].rows
    for part in parts.values():  # split parts are selections: read through their base
        assert len(part.to_pandas()) == part.rows
    assert len(namespace["clean"].rejected()) == namespace["clean"].manifest.rejected.rows
    assert "gsm8k@v1 prompts 200" in capsys.readouterr().out


def test_import_through_the_api(tmp_path, data_dir):
    import thinkforge as tf

    store = tf.Store(tmp_path / "store")
    v = tf.steps.import_(store, name="math", path=str(data_dir / "math500_demo.jsonl"),
                         preset="math500")
    assert v.ref == "math@v1" and v.kind == "prompts" and v.rows == len(v.to_pandas())
    again = tf.steps.import_(store, name="math", path=str(data_dir / "math500_demo.jsonl"),
                             preset="math500")
    assert again.ref == "math@v1"  # the same file and options: reused

