"""The report: a dataset card with provenance, lineage, counts, licences and load snippets,
and an HTML page whose plots depend on what the version holds; rendered in headless
Chromium to check that every image loads from file:// without a server."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from thinkforge.curation.report import write_report

pytest.importorskip("matplotlib")


def plot_names(written):
    return sorted(p.rsplit("/", 1)[-1] for p in written["plots"])


def test_rl_pool_report_has_pass_rate_bucket_curriculum_and_rejected_plots(store, versions, tmp_path):
    written = write_report(store, "toy-pool", tmp_path / "r")
    # one category and one rejection reason: those one-bar plots are skipped (tables remain)
    assert plot_names(written) == ["bucket_counts.png", "curriculum_pass_rate.png",
                                   "pass_rate_histogram.png"]
    for path in written["plots"]:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    card = (tmp_path / "r" / "README.md").read_text()
    assert card.startswith("---\npretty_name: toy-pool\nlicense:\n  - \"MIT\"")
    # lineage reaches the prompts through the rollouts
    for depth, ref in enumerate(("toy-pool@v1", "toy-rollouts@v1", "toy@v1")):
        assert f"\n{'  ' * depth}- `{ref}`" in card  # nested by distance
    assert "toy-pool (curriculum): too_easy | 1" in card
    assert "thinkforge export toy-pool@v1 --format verl" in card
    assert versions["rl_pool"].fingerprint in card


def test_sft_report_has_length_mix_and_verified_plots(store, versions, tmp_path):
    written = write_report(store, "toy-sft", tmp_path / "r")
    assert plot_names(written) == ["mix_category_mode.png", "output_lengths.png",
                                   "verified_rate.png"]
    card = (tmp_path / "r" / "README.md").read_text()
    assert "| math / on | 3 |" in card and "| math / off | 3 |" in card
    html = (tmp_path / "r" / "report.html").read_text()
    assert html.count("<img ") == 3 and 'src="plots/output_lengths.png"' in html


def test_sft_report_shows_verified_rates_teachers_sampling_and_the_warning(store, versions,
                                                                          tmp_path):
    """Issue 9 item 13: verified rate by mode and category (table + plot), the warning of
    item 2, the teacher and sampling of each mode."""
    from thinkforge.generators.runs import stable_hash
    from thinkforge.manifests.schemas import SYSTEM_PROMPTS

    rows = []
    for i in range(5):
        for mode in ("on", "off"):
            rows.append({"id": f"x{i}{mode}", "prompt_id": f"p{i}", "pair_id": stable_hash([i]),
                         "category": "math" if i < 4 else "code", "reasoning": mode,
                         "system_prompt": SYSTEM_PROMPTS[mode], "input": [{"role": "user",
                                                                           "content": "q"}],
                         "output": "a", "generator": "r1" if mode == "on" else "llama",
                         "license": "MIT", "ground_truth": "1", "verified": i == 0 and mode == "on",
                         "answer": "1", "output_tokens": 3, "finish_reason": "stop"})
    config = {"n": 4, "reasoning_format": "native",
              "sampling_on": {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 100},
              "sampling_off": {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 50}}
    with store.writer("low", "sft", step={"type": "generate_sft", "config": config},
                      parents=[versions["prompts"]]) as w:
        w.write(rows)
    written = write_report(store, "low", tmp_path / "r")
    card = (tmp_path / "r" / "README.md").read_text()
    assert "## Verified answers" in card and "**Warning:** low@v1: verified rate 10%" in card
    assert "| math | on | 4 | 4 | 1 | 25% |" in card and "| code | off | 1 | 1 | 0 | 0% |" in card
    assert "| on | r1 (5) | 0.6 | 0.95 | 100 | 4 | native |" in card
    assert "| off | llama (5) | 0.0 | 1.0 | 50 | 4 | native |" in card
    html = (tmp_path / "r" / "report.html").read_text()
    assert 'class="warning"' in html and "verified rate 10%" in html
    assert "verified_rate.png" in plot_names(written)
    # the mix plot has 4 bars; the prompts-version report has no verified section
    assert "Verified answers" not in (write_report(store, "toy", tmp_path / "p") and
                                      (tmp_path / "p" / "README.md").read_text())


def test_rejected_plot_labels_wrap_instead_of_running_off_the_figure():
    from thinkforge.curation.report_plots import ReportData, rejected_labels

    data = ReportData(columns=set(), rejected={
        "demo-sft-correct (filter.correct): pair_partner:off:incorrect": 7,
        "demo-sft-quality (filter.quality): think_malformed": 2})
    labels = rejected_labels(data)
    assert all(len(line) <= 34 for label in labels for line in label.split("\n"))
    assert labels[0].count("\n") >= 1


def test_rollouts_report_derives_pass_rates_and_preferences_have_no_plots(store, versions, tmp_path):
    assert "pass_rate_histogram.png" in plot_names(write_report(store, "toy-rollouts", tmp_path / "a"))
    written = write_report(store, "toy-prefs", tmp_path / "b")
    assert written["plots"] == []
    assert "No plots for this kind" in (tmp_path / "b" / "report.html").read_text()


def test_cli_report_prints_the_html_path(cli_run, versions, tmp_path):
    result = cli_run("report", "toy-pool", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "r" / "report.html")
    assert cli_run("report", "nope", "--out", str(tmp_path / "x")).exit_code == 3


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_binary():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium_binary() is None,
                    reason="headless Chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium_with_every_image_loaded(store, versions, tmp_path):
    written = write_report(store, "toy-pool", tmp_path / "r")
    loaded, total, dom = render(written["html"], tmp_path / "profile-1")
    plots = len(written["plots"])
    assert total == plots == 3 and loaded == total  # one-bar plots are left out
    assert '<p class="missing">' not in dom
    # the check can fail: a deleted plot is counted and flagged on the page
    (tmp_path / "r" / "plots" / "bucket_counts.png").unlink()
    loaded, total, dom = render(written["html"], tmp_path / "profile-2")
    assert (loaded, total) == (plots - 1, plots)
    assert '<p class="missing">plot missing: plots/bucket_counts.png</p>' in dom


def render(html_path, profile):
    """Load the page from file:// in headless Chromium; return (images loaded, images, DOM)."""
    profile.mkdir()
    result = subprocess.run(
        [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--dump-dom", f"file://{html_path}"],
        capture_output=True, text=True, timeout=120)
    match = re.search(r'data-images-loaded="(\d+)/(\d+)"', result.stdout)
    assert match, f"no image check in the DOM; chromium stderr: {result.stderr[-2000:]}"
    return int(match.group(1)), int(match.group(2)), result.stdout
