"""The prompt that was measured is the prompt that is trained (issue 16 item 3), and a
pulled copy exports the same bytes (item 8)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from thinkforge.curation.export import export_version, pull_version
from thinkforge.generators.reasoning import teacher_messages
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.selection import read_rejected, read_table  # noqa: F401


def test_rl_exports_carry_the_messages_the_rollouts_were_sampled_from(store, pool, tmp_path):
    record = export_version(store, pool.ref, "trl-grpo", tmp_path / "grpo")
    assert record["prompt_matches_rollouts"] is True
    rows = pq.read_table(tmp_path / "grpo" / "train.parquet").to_pylist()
    pool_rows = {r["id"]: r for r in read_table(store, pool).to_pylist()}
    for row in rows:
        sent = teacher_messages(pool_rows[row["id"]]["input"], "on", "prompted")
        assert row["prompt"] == sent  # system turn + the "Final answer:" instruction
        assert "Final answer:" in row["prompt"][-1]["content"]
    verl = export_version(store, pool.ref, "verl", tmp_path / "verl")
    assert verl["prompt_template"]["modes"]["on"]["user_suffix"]
    verl_rows = pq.read_table(tmp_path / "verl" / "train.parquet").to_pylist()
    assert [r["prompt"] for r in verl_rows] == [r["prompt"] for r in rows]


def test_a_pulled_copy_exports_the_same_bytes(store, pool, tmp_path):
    pull_version(store, pool.ref, tmp_path / "pulled")
    copy = DatasetStore(tmp_path / "pulled")
    for fmt in ("verl", "trl-grpo", "openrlhf"):
        a = export_version(store, pool.ref, fmt, tmp_path / f"a-{fmt}")
        b = export_version(copy, pool.ref, fmt, tmp_path / f"b-{fmt}")
        assert [f["sha256"] for f in a["files"]] == [f["sha256"] for f in b["files"]], fmt
    info = pq.read_table(tmp_path / "b-verl" / "train.parquet").to_pylist()[0]["extra_info"]
    assert info["policy_model"] == "smollm2-135m"  # lineage parents were not pulled


def test_report_states_the_rollout_prompt(store, pool, tmp_path):
    from thinkforge.curation.report import write_report

    out = write_report(store, pool.ref, tmp_path / "report")
    text = (out if isinstance(out, str) else json.dumps(out, default=str))
    card = next((tmp_path / "report").glob("*.md")).read_text()
    assert "## Prompt the pass rates were measured on" in card, text
    assert "system turn `detailed thinking on`" in card and "Final answer:" in card
