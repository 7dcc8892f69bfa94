"""Backends and export formats come from one table each: the CLI and configs read it."""

from __future__ import annotations

import pytest


def test_backend_names_are_the_registry(cli_run):
    from thinkforge.generators.backends import backend_names
    from thinkforge.generators.config import BackendConfig

    assert {"transformers", "openai", "vllm"} <= set(backend_names())
    help_text = cli_run("generate", "rollouts", "--help").output
    assert "[" + "|".join(backend_names()) + "]" in help_text
    # every BackendConfig field is a flag (the old 13-entry table is gone)
    for field in BackendConfig.model_fields:
        assert f"--{field.replace('_', '-')}" in help_text, field


def test_a_registered_backend_is_accepted_by_the_config_and_the_cli(cli_run, monkeypatch):
    from thinkforge.generators import backends
    from thinkforge.generators.config import BackendConfig

    monkeypatch.setattr(backends, "_REGISTERED", {})
    with pytest.raises(ValueError, match="unknown backend 'echo'"):
        BackendConfig(backend="echo")
    backends.register_backend("echo", "thinkforge.generators.backends.base:Backend")
    assert BackendConfig(backend="echo").backend == "echo"
    assert backends.backend_class("echo").__name__ == "Backend"
    assert "|echo]" in cli_run("generate", "rollouts", "--help").output


def test_export_formats_are_the_registry(cli_run, monkeypatch):
    from thinkforge.curation import export_formats
    from thinkforge.curation.export_formats import ExportFormat, format_names, register_export, suggested_format

    assert {"trl-sft", "trl-grpo", "verl", "openrlhf", "nemotron", "hf"} <= set(format_names())
    assert "[" + "|".join(format_names()) + "]" in cli_run("export", "--help").output
    monkeypatch.setattr(export_formats, "_REGISTERED", {})
    register_export(ExportFormat("my-trainer", ("sft",), "jsonl", lambda row, i, ctx: row))
    assert "my-trainer" in cli_run("export", "--help").output
    assert suggested_format("rl_pool") == "verl" and suggested_format("sft") == "trl-sft"
