"""The report: a dataset card with provenance, lineage, counts, licences and load snippets,
and an HTML page whose plots depend on what the version holds; rendered in headless
Chromium to check that every image loads from file:// without a server."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from curation.report import write_report

pytest.importorskip("matplotlib")


def plot_names(written):
    return sorted(p.rsplit("/", 1)[-1] for p in written["plots"])


def test_rl_pool_report_has_pass_rate_bucket_curriculum_and_rejected_plots(store, versions, tmp_path):
    written = write_report(store, "toy-pool", tmp_path / "r")
    assert plot_names(written) == ["bucket_counts.png", "curriculum_pass_rate.png",
                                   "mix_category_mode.png", "pass_rate_histogram.png",
                                   "rejected_by_reason.png"]
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


def test_sft_report_has_length_and_mix_plots_only(store, versions, tmp_path):
    written = write_report(store, "toy-sft", tmp_path / "r")
    assert plot_names(written) == ["mix_category_mode.png", "output_lengths.png",
                                   "rejected_by_reason.png"]
    card = (tmp_path / "r" / "README.md").read_text()
    assert "| math / on | 3 |" in card and "| math / off | 3 |" in card
    html = (tmp_path / "r" / "report.html").read_text()
    assert html.count("<img ") == 3 and 'src="plots/output_lengths.png"' in html


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
    assert total == len(written["plots"]) == 5 and loaded == total
    assert '<p class="missing">' not in dom
    # the check can fail: a deleted plot is counted and flagged on the page
    (tmp_path / "r" / "plots" / "bucket_counts.png").unlink()
    loaded, total, dom = render(written["html"], tmp_path / "profile-2")
    assert (loaded, total) == (4, 5)
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
