"""Issue 9 item 12: the main job's output reads well (no wraps, no tqdm noise, next steps)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_log_lines_are_never_wrapped_mid_sentence(capsys):
    from thinkforge.output import log

    message = "imported /a/very/long/path/" + "x" * 120 + " -> demo-prompts@v1 (200 rows)"
    log(message)
    assert capsys.readouterr().err == message + "\n"


def test_the_demo_ends_saying_what_to_do_next():
    script = (REPO / "scripts" / "demo.sh").read_text()
    tail = script[script.index('step "next steps"'):]
    for needed in ("export demo-sft-train --format trl-prompt-completion",
                   "build recipes/openai-teacher.yaml", "vllm serve",
                   "demo-sft-train holds no answers", "verified"):
        assert needed in tail


@pytest.mark.slow
def test_the_one_time_model_conversion_prints_one_line_and_no_progress_bars(tmp_path, capfd,
                                                                            monkeypatch):
    pytest.importorskip("gguf")
    from thinkforge.generators.backends.model_cache import resolve_model

    monkeypatch.setenv("THINKFORGE_CACHE", str(tmp_path))
    path = resolve_model("smollm2-135m")
    assert (path / "model.safetensors").is_file()
    err = capfd.readouterr().err
    assert "converting the embedded teacher once" in err
    assert "it/s" not in err and "Converting and de-quantizing" not in err and "%|" not in err
