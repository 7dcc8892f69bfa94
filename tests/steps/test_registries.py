"""Backends and export formats come from one table each: the CLI and configs read it."""

from __future__ import annotations

import typing


def test_backend_names_are_the_registry(cli_run):
    from thinkforge.generators.backends import BACKENDS
    from thinkforge.generators.config import BackendConfig

    literal = BackendConfig.model_fields["backend"].annotation
    assert typing.get_args(literal) == tuple(BACKENDS)
    help_text = cli_run("generate", "rollouts", "--help").output
    assert "[" + "|".join(BACKENDS) + "]" in help_text
    # every BackendConfig field is a flag (the old 13-entry table is gone)
    for field in BackendConfig.model_fields:
        assert f"--{field.replace('_', '-')}" in help_text, field


def test_export_formats_are_the_registry(cli_run, monkeypatch):
    from thinkforge.curation import export_formats
    from thinkforge.curation.export_formats import FORMATS, ExportFormat, register_export, suggested_format

    assert "[" + "|".join(FORMATS) + "]" in cli_run("export", "--help").output
    monkeypatch.setattr(export_formats, "FORMATS", dict(FORMATS))
    register_export(ExportFormat("my-trainer", ("sft",), "jsonl", lambda row, i, ctx: row))
    assert "my-trainer" in cli_run("export", "--help").output
    assert suggested_format("rl_pool") == "verl" and suggested_format("sft") == "trl-sft"
