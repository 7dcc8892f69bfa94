"""The report's numbers (DuckDB over the version's shards) and its PNG plots (matplotlib).

Each plot exists only when the version has the columns it needs, so an `sft` version gets
length and mix plots, an `rl_pool` version pass-rate, bucket and curriculum plots.
matplotlib is imported inside ``draw_plots`` (the `report` extra), with the Agg backend: no
display is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import connect
from thinkforge.manifests.errors import require
from thinkforge.manifests.selection import row_relation


@dataclass
class ReportData:
    """Everything the card and the page show, computed once."""

    columns: set[str]
    pass_rates: list[float] = field(default_factory=list)
    buckets: dict[str, int] = field(default_factory=dict)
    curriculum: list[tuple[int, float, int]] = field(default_factory=list)  # batch, mean, rows
    lengths: dict[str, list[int]] = field(default_factory=dict)            # mode -> lengths
    length_unit: str = "tokens"
    mix: dict[tuple[str, str], int] = field(default_factory=dict)          # (category, mode) -> n
    licenses: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)                 # "step: reason" -> n
    sample: list[dict[str, Any]] = field(default_factory=list)
    # sft: (category, mode) -> (rows, checked, verified); checked = a verifier decided
    verified: dict[tuple[str, str], tuple[int, int, int]] = field(default_factory=dict)
    # sft: mode -> {"teachers": {model: rows}, "sampling": {...} or None, ...}
    teachers: dict[str, dict[str, Any]] = field(default_factory=dict)


def collect(store: DatasetStore, manifest: Manifest, lineage: list[Manifest]) -> ReportData:
    store.check_sizes(manifest)
    cols = {f["name"] for f in manifest.schema_}
    data = ReportData(columns=cols)
    con = connect()
    src = row_relation(store, manifest)
    q = lambda sql: con.execute(sql.replace("{src}", src)).fetchall()  # noqa: E731
    if "pass_rate" in cols:
        data.pass_rates = [r[0] for r in q("SELECT pass_rate FROM {src}")]
    elif manifest.kind == "rollouts":
        data.pass_rates = [r[0] for r in q(
            "SELECT avg(coalesce(correct, false)::INT) FROM {src} GROUP BY prompt_id")]
    if "bucket" in cols:
        data.buckets = dict(q("SELECT coalesce(bucket, '<none>'), count(*) FROM {src} "
                              "GROUP BY ALL ORDER BY 1"))
    if "curriculum_batch" in cols:
        data.curriculum = [tuple(r) for r in q(
            "SELECT curriculum_batch, avg(pass_rate), count(*) FROM {src} "
            "WHERE curriculum_batch IS NOT NULL GROUP BY 1 ORDER BY 1")]
    if "output" in cols:
        mode = "reasoning" if "reasoning" in cols else "'all'"
        # token counts when every row has one (the generator's tokenizer), else characters
        tokens = "output_tokens" in cols and not q(
            "SELECT count(*) FROM {src} WHERE output_tokens IS NULL")[0][0]
        data.length_unit = "tokens" if tokens else "characters"
        measure = "output_tokens" if tokens else "length(output)"
        rows = q(f"SELECT {mode}, {measure} FROM {{src}}")
        for m, n in rows:
            data.lengths.setdefault(m, []).append(int(n))
    if "category" in cols:
        mode = "reasoning" if "reasoning" in cols else "'-'"
        data.mix = {(c, m): n for c, m, n in q(
            f"SELECT category, {mode}, count(*) FROM {{src}} GROUP BY ALL ORDER BY 1, 2")}
    if "license" in cols:
        data.licenses = dict(q("SELECT coalesce(license, 'unknown'), count(*) FROM {src} "
                               "GROUP BY ALL ORDER BY 2 DESC"))
    if manifest.kind == "sft" and {"verified", "reasoning", "category"} <= cols:
        data.verified = {(c, m): (n, checked, ok) for c, m, n, checked, ok in q(
            "SELECT category, reasoning, count(*), count(verified), "
            "count(*) FILTER (WHERE verified) FROM {src} GROUP BY ALL ORDER BY 1, 2")}
        data.teachers = _teachers(q, cols, lineage)
    data.sample = con.sql(f"SELECT * FROM {src} LIMIT 3").to_arrow_table().to_pylist()
    con.close()
    for m in lineage:  # rows every step of the lineage dropped, with its reason
        for reason, n in m.rejected.by_reason.items():
            data.rejected[f"{m.name} ({m.step.type}): {reason}"] = n
    return data


def _teachers(q, cols: set[str], lineage: list[Manifest]) -> dict[str, dict[str, Any]]:
    """Per mode: the teacher models that wrote the rows (the `generator` column) and the
    sampling settings of the nearest `generate_sft` step in the lineage."""
    out: dict[str, dict[str, Any]] = {}
    if "generator" in cols:
        for mode, model, n in q("SELECT reasoning, generator, count(*) FROM {src} "
                                "GROUP BY ALL ORDER BY 1, 3 DESC"):
            out.setdefault(mode, {"teachers": {}})["teachers"][model] = n
    step = next((m.step for m in lineage if m.step.type == "generate_sft"), None)
    config = step.config if step else {}
    for mode in out:
        sampling = config.get(f"sampling_{mode}")
        out[mode].update(sampling=sampling, n=config.get("n"),
                         reasoning_format=config.get("reasoning_format"))
    return out


def rejected_labels(data: ReportData, width: int = 34) -> list[str]:
    """Long "version (step): reason" labels wrapped onto lines of their own (the plot grows
    with them), so they are never cut off or drawn over each other."""
    import textwrap

    return [textwrap.fill(label, width, break_long_words=True) for label in data.rejected]


def draw_plots(data: ReportData, out: Path) -> list[tuple[str, str]]:
    """Write the PNGs the data allows into ``out``; return (file name, caption) pairs."""
    matplotlib = require("matplotlib", "report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str]] = []

    def save(fig, name: str, caption: str) -> None:
        for ax in fig.axes:  # counts are whole numbers: no 0.25-row ticks on small versions
            for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
                if label in ("prompts", "rows", "rows dropped"):
                    axis.set_major_locator(plt.MaxNLocator(integer=True))
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        made.append((name, caption))

    if data.pass_rates:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.hist(data.pass_rates, bins=[i / 10 for i in range(11)], color="#4c72b0", edgecolor="white")
        ax.set(xlabel="pass rate (correct rollouts / rollouts)", ylabel="prompts",
               title="Pass rate per prompt")
        save(fig, "pass_rate_histogram.png", "Pass rate per prompt (from the policy's rollouts).")
    # a bar chart of one bar says nothing a table does not: those plots are skipped
    if len(data.buckets) > 1:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.bar(list(data.buckets), list(data.buckets.values()), color="#55a868")
        ax.set(xlabel="difficulty bucket", ylabel="prompts", title="Difficulty buckets")
        save(fig, "bucket_counts.png", "Prompts per difficulty bucket.")
    if data.curriculum:
        batches = [b for b, _, _ in data.curriculum]
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.plot(batches, [m or 0 for _, m, _ in data.curriculum], marker="o", color="#c44e52")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set(xlabel="curriculum batch", ylabel="mean pass rate", ylim=(0, 1.05),
               title="Mean pass rate per curriculum batch (easy -> hard)")
        save(fig, "curriculum_pass_rate.png",
             "Mean pass rate per curriculum batch: it should fall as training proceeds.")
    if data.lengths:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        for mode, values in sorted(data.lengths.items()):
            ax.hist(values, bins=20, alpha=0.6, label=f"reasoning {mode}")
        ax.set(xlabel=f"output length ({data.length_unit})", ylabel="rows",
               title="Output length by reasoning mode")
        ax.legend()
        save(fig, "output_lengths.png", f"Output length in {data.length_unit}, by reasoning mode.")
    if len(data.mix) > 1:
        categories = sorted({c for c, _ in data.mix})
        modes = sorted({m for _, m in data.mix})
        fig, ax = plt.subplots(figsize=(6, 3.4))
        width = 0.8 / len(modes)
        for i, mode in enumerate(modes):
            ax.bar([x + i * width for x in range(len(categories))],
                   [data.mix.get((c, mode), 0) for c in categories], width,
                   label=f"reasoning {mode}" if mode != "-" else "rows")
        ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(categories))], categories)
        ax.set(ylabel="rows", title="Mix by category and reasoning mode")
        ax.legend()
        save(fig, "mix_category_mode.png", "Rows by category and reasoning mode.")
    rated = {k: v for k, v in data.verified.items() if v[1]}
    if len(rated) > 1:
        labels = [f"{c}\n{m}" for c, m in rated]
        rates = [ok / checked for _, checked, ok in rated.values()]
        fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(labels) + 2), 3.4))
        bars = ax.bar(labels, rates, color=["#4c72b0" if "\non" in x else "#dd8452" for x in labels])
        for bar, (_, checked, ok) in zip(bars, rated.values(), strict=True):
            ax.annotate(f"{ok}/{checked}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set(ylabel="verified rate", ylim=(0, 1.1), xlabel="category / reasoning mode",
               title="Verified answers by category and mode")
        save(fig, "verified_rate.png", "Share of answers a verifier said right (of those it "
             "could decide), by category and reasoning mode.")
    if len(data.rejected) > 1:
        labels = rejected_labels(data)
        lines = sum(label.count("\n") + 1 for label in labels)
        fig, ax = plt.subplots(figsize=(8, 1.0 + 0.3 * lines + 0.15 * len(labels)))
        ax.barh(labels, list(data.rejected.values()), color="#8172b2")
        ax.set(xlabel="rows dropped", title="Rejected rows by step and reason")
        ax.tick_params(axis="y", labelsize=8)
        ax.invert_yaxis()
        save(fig, "rejected_by_reason.png", "Rows each step of the lineage dropped, by reason.")
    return made
