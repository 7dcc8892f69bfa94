"""A third-party package adds a step, a teacher backend, an export format and a training
method with one module and its entry points, and no edit to thinkforge: it is installed
here (pip, into a folder of its own) and used from a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "tf-plugin-demo"
version = "0.1"

[tool.setuptools]
py-modules = ["tf_plugin_demo"]

[project.entry-points."thinkforge.steps"]
demo = "tf_plugin_demo"
[project.entry-points."thinkforge.backends"]
echo = "tf_plugin_demo:EchoBackend"
[project.entry-points."thinkforge.exports"]
plain-jsonl = "tf_plugin_demo:PLAIN"
[project.entry-points."thinkforge.trainers"]
toy = "tf_plugin_demo:TOY"
"""

MODULE = '''
from pydantic import Field
from thinkforge.curation.export_formats import ExportFormat
from thinkforge.filters.base import StepConfig, declare_filter, row_order, run_step, source
from thinkforge.manifests.schemas import schema_for
from thinkforge.trainers.registry import TrainingMethod


class ShortConfig(StepConfig):
    max_chars: int = Field(80, ge=1, description="longest prompt text kept")


def run_short(store, data, name, config, resources=None):
    columns = schema_for(data.kind).names

    def body(ctx):
        ctx.bind(max_chars=config.max_chars)
        ctx.con.execute("CREATE TEMP VIEW judged AS SELECT *, CASE WHEN length(input[1].content) > "
                        f"(SELECT max_chars FROM knobs) THEN 'too_long' END AS reason FROM {source(store, data)}")
        ctx.keep_reject("judged", columns, order=row_order(data))

    return run_step(store, name=name, kind=data.kind, step_type="filter.short_prompts", config=config,
                    inputs=[data], body=body, resources=resources)


declare_filter("short_prompts", run_short, config=ShortConfig, kinds=("prompts",),
               help="Keep prompts of at most --max-chars characters.",
               examples=("thinkforge filter short_prompts gsm8k --name short --max-chars 120",))


class EchoBackend:
    def __init__(self, config, model):
        self.model = model


PLAIN = ExportFormat("plain-jsonl", ("prompts",), "jsonl", lambda row, index, ctx: {"id": row["id"]})
TOY = TrainingMethod("toy", ("sft",), "tf_plugin_demo:ShortConfig", "tf_plugin_demo", "a toy method",
                     "thinkforge train toy --data x")
'''

PROBE = """
import json, sys
import thinkforge as tf
from thinkforge.curation.export_formats import format_names
from thinkforge.generators.backends import make_backend
from thinkforge.generators.config import BackendConfig
from thinkforge.manifests.steps import load_steps
from thinkforge.trainers.registry import methods

store = tf.Store(sys.argv[1])
tf.steps.import_(store, name="p", path=sys.argv[2], preset="gsm8k")
short = tf.steps.short_prompts(store, "p", name="p-short", max_chars=120)
backend = make_backend(BackendConfig(backend="echo"), "m")
print(json.dumps({"steps": sorted(load_steps()), "rows": short.rows,
                  "rejected": short.manifest.rejected.by_reason, "backend": type(backend).__name__,
                  "exports": format_names(), "methods": sorted(methods())}))
"""


def test_a_plugin_package_adds_a_step_a_backend_an_export_and_a_method(tmp_path, data_dir):
    source = tmp_path / "src"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "tf_plugin_demo.py").write_text(textwrap.dedent(MODULE))
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                                "--no-build-isolation", "--target", str(target), str(source)],
                               capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.skip(f"could not build the plugin package here: {installed.stderr[-300:]}")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "store"),
                          str(data_dir / "gsm8k_train_demo.jsonl")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert "short_prompts" in seen["steps"] and "passrate" in seen["steps"]
    assert seen["rows"] > 0 and set(seen["rejected"]) == {"too_long"}
    assert seen["backend"] == "EchoBackend"
    assert "plain-jsonl" in seen["exports"] and "trl-sft" in seen["exports"]
    assert seen["methods"] == ["dpo", "grpo", "reward", "rloo", "sft", "toy"]
    # and the CLI derives a command and a train subcommand from them, in a fresh process
    helped = subprocess.run([sys.executable, "-m", "thinkforge", "filter", "short_prompts", "--help"],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "--max-chars" in helped.stdout, helped.stderr[-1000:]
