"""``thinkforge report``: a dataset card (README.md) and an HTML page with plots.

The card follows the Hugging Face dataset-card layout (YAML front matter, then prose):
provenance (the step and its config, who built it), lineage (every ancestor version with
its step and fingerprint), counts, licences, rejected rows, and how to load the version.
``report.html`` shows the same facts with the PNG plots beside it (relative paths, so it
reads from ``file://`` without a server); a small inline script marks a plot that failed to
load and records ``data-images-loaded="ok/total"`` on ``<body>`` (the browser test reads it).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from thinkforge.manifests import DatasetStore, Manifest

from .report_plots import ReportData, collect, draw_plots

SHOWN_STATS = ("by_category", "by_reasoning", "by_bucket", "by_source", "by_generator",
               "by_finish_reason", "output_tokens", "verified_rate", "pass_rate_mean",
               "curriculum_batches")


def lineage(store: DatasetStore, manifest: Manifest) -> list[Manifest]:
    """The version and all its ancestors, nearest first (each once)."""
    return [m for m, _ in lineage_depths(store, manifest)]


def lineage_depths(store: DatasetStore, manifest: Manifest) -> list[tuple[Manifest, int]]:
    """(version, depth) for the version and each ancestor, depth first: each parent follows
    the version it feeds, so an indented list reads as a tree (shared ancestors once)."""
    out: list[tuple[Manifest, int]] = []
    seen = {manifest.ref}

    def visit(m: Manifest, depth: int) -> None:
        out.append((m, depth))
        for p in m.parents:
            if p.ref in seen:
                continue
            seen.add(p.ref)
            try:
                parent = store.resolve(p.ref)
            except Exception:  # an ancestor removed from this store: lineage stops there
                continue
            visit(parent, depth + 1)

    visit(manifest, 0)
    return out


def write_report(store: DatasetStore, ref: str | Manifest, out: str | Path) -> dict[str, Any]:
    """Write README.md, report.html and plots/*.png into ``out``; return what was written."""
    manifest = store.resolve(ref) if isinstance(ref, str) else ref
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    depths = lineage_depths(store, manifest)
    chain = [m for m, _ in depths]
    data = collect(store, manifest, chain)
    plots = draw_plots(data, out / "plots")
    runs = trained_on(store, manifest)
    (out / "README.md").write_text(card(manifest, depths, data, store.catalog_path, runs),
                                   encoding="utf-8")
    (out / "report.html").write_text(page(manifest, chain, data, plots, runs), encoding="utf-8")
    return {"ref": manifest.ref, "card": str(out / "README.md"), "html": str(out / "report.html"),
            "plots": [str(out / "plots" / name) for name, _ in plots]}


def trained_on(store: DatasetStore, manifest: Manifest) -> list[dict[str, Any]]:
    """The training runs whose data was this version (run records, thinkforge.manifests.training_runs)."""
    from thinkforge.manifests.training_runs import TrainingRuns

    out = []
    for r in TrainingRuns(store).for_data(manifest.fingerprint):
        loss = next((m["loss"] for m in reversed(r.metrics) if "loss" in m), None)
        out.append({"run": r.run_id, "method": r.method, "model": r.base_model,
                    "steps": r.final_metrics.get("global_step"),
                    "final loss": None if loss is None else round(float(loss), 4),
                    "world size": r.world_size, "weights sha256": r.weights_sha256[:16],
                    "output": r.output_dir})
    return out


def _runs_markdown(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "No training run has used this version yet (`thinkforge train ...`).\n"
    head = "| " + " | ".join(runs[0]) + " |\n|" + "---|" * len(runs[0]) + "\n"
    return head + "".join("| " + " | ".join(f"`{v}`" if k in ("run", "weights sha256") else str(v)
                                           for k, v in r.items()) + " |\n" for r in runs)


def _counts_table(counts: dict[str, int], header: str) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
    return f"| {header} | rows |\n|---|---|\n{rows}\n"


def load_snippets(manifest: Manifest, catalog: Path) -> str:
    ref = manifest.ref
    from .export_formats import suggested_format

    formats = suggested_format(manifest.kind)
    return f"""```bash
thinkforge pull {ref} --to ./data                   # verified copy (sha256) of the shards
thinkforge export {ref} --format {formats} --out ./export
thinkforge sql 'SELECT * FROM "{ref}" LIMIT 5'
```

```python
import datasets, duckdb
ds = datasets.load_dataset("parquet", data_files="./data/datasets/{manifest.name}/{manifest.version}/data/*.parquet")
duckdb.connect("{catalog}", read_only=True).sql('FROM "{ref}"').show()
```
"""


def _prompt_section(manifest: Manifest) -> str:
    """What the RL trainer is given as the prompt: the rollouts' template, said plainly."""
    template = (manifest.provenance.get("export") or {}).get("prompt_template")
    if not template:
        return ""
    lines = ["## Prompt the pass rates were measured on", "",
             f"Rollouts were sampled with the `{template['reasoning_format']}` format; "
             "the RL exports (trl-grpo, verl, openrlhf) give the trainer exactly these "
             "messages around each row's `input`:", ""]
    for mode, spec in template["modes"].items():
        suffix = spec["user_suffix"]
        lines.append(f"- reasoning {mode}: system turn `{spec['system']}`; last user turn "
                     + (f"followed by `{suffix.strip()}`" if suffix else "unchanged"))
    return "\n".join(lines) + "\n\n"


def _verified_rows(data: ReportData) -> list[dict[str, Any]]:
    rows = []
    for (category, mode), (n, checked, ok) in data.verified.items():
        rows.append({"category": category, "reasoning": mode, "rows": n, "checked": checked,
                     "verified": ok, "rate": f"{ok / checked:.0%}" if checked else "n/a"})
    return rows


def _teacher_rows(data: ReportData) -> list[dict[str, Any]]:
    rows = []
    for mode, facts in sorted(data.teachers.items()):
        sampling = facts.get("sampling") or {}
        rows.append({"reasoning": mode,
                     "teacher (rows)": ", ".join(f"{m} ({n})" for m, n in facts["teachers"].items()),
                     "temperature": sampling.get("temperature", "n/a"),
                     "top_p": sampling.get("top_p", "n/a"),
                     "max_new_tokens": sampling.get("max_new_tokens", "n/a"),
                     "candidates (n)": facts.get("n") or "n/a",
                     "format": facts.get("reasoning_format") or "n/a"})
    return rows


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]) + "\n"
    return head + "".join("| " + " | ".join(str(v) for v in r.values()) + " |\n" for r in rows)


def _sft_section(manifest: Manifest, data: ReportData) -> str:
    """sft: the verified rate by category and mode (with the low-rate warning) and the
    teachers and sampling per mode: what a trainer needs to trust the answers."""
    if manifest.kind != "sft":
        return ""
    from thinkforge.manifests.gates import verified_rate_warning, warning_threshold

    warning = verified_rate_warning(manifest)
    lines = ["## Verified answers", ""]
    if warning:
        lines += [f"> **Warning:** {warning}", ""]
    lines += [f"The warning threshold is {warning_threshold():.0%} "
              "(`$THINKFORGE_VERIFIED_RATE_WARNING`); `checked` counts answers a verifier could "
              "decide.", ""]
    lines += [_markdown_table(_verified_rows(data)) if data.verified else "No rows.\n"]
    if data.teachers:
        lines += ["## Teachers and sampling", "", _markdown_table(_teacher_rows(data))]
    return "\n".join(lines) + "\n"


def _sft_html(manifest: Manifest, data: ReportData) -> str:
    if manifest.kind != "sft":
        return ""
    from thinkforge.manifests.gates import verified_rate_warning

    e = html.escape

    def table(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "<p>No rows.</p>"
        head = "".join(f"<th>{e(k)}</th>" for k in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r.values()) + "</tr>"
                       for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    warning = verified_rate_warning(manifest)
    return ("<h2>Verified answers</h2>"
            + (f'<p class="warning"><b>Warning:</b> {e(warning)}</p>' if warning else "")
            + table(_verified_rows(data))
            + ("<h2>Teachers and sampling</h2>" + table(_teacher_rows(data))
               if data.teachers else ""))


def card(manifest: Manifest, depths: list[tuple[Manifest, int]], data: ReportData,
         catalog: Path, runs: list[dict[str, Any]] = ()) -> str:
    licences = sorted(data.licenses) or ["unknown"]
    front = "\n".join(["---", f"pretty_name: {manifest.name}",
                       "license:", *[f"  - {json.dumps(x)}" for x in licences],
                       "tags: [thinkforge, reasoning, llama-nemotron]",
                       f"thinkforge_ref: {manifest.ref}",
                       f"thinkforge_fingerprint: {manifest.fingerprint}", "---"])
    stats = "\n".join(f"- **{k}**: `{json.dumps(manifest.stats[k], default=str)}`"
                      for k in SHOWN_STATS if k in manifest.stats)
    chain_lines = "\n".join(
        f"{'  ' * depth}- `{m.ref}` ({m.kind}, {m.rows} rows) <- step `{m.step.type}`, "
        f"fingerprint `{m.fingerprint[:12]}`, created {m.created_at}"
        for m, depth in depths)
    rejected = _counts_table(data.rejected, "step: reason") if data.rejected else "None.\n"
    by = manifest.created_by
    return f"""{front}

# {manifest.name} ({manifest.version})

A **{manifest.kind}** dataset version built with thinkforge: {manifest.rows} rows,
fingerprint `{manifest.fingerprint}`. Versions are immutable; every shard's sha256 is in
`manifest.json` and is checked whenever the bytes leave the store.

## Provenance

- built by step **`{manifest.step.type}`** on {manifest.created_at}
  (thinkforge {by.get('tool_version')}, git `{by.get('git_sha') or 'n/a'}`, host `{by.get('host')}`)
- step config:

```json
{json.dumps(manifest.step.config, indent=2, default=str)}
```

- step facts: `{json.dumps(manifest.provenance, default=str)}`

{_prompt_section(manifest)}{_sft_section(manifest, data)}## Lineage

{chain_lines}

## Counts

{stats or '- rows: ' + str(manifest.rows)}

{_counts_table({f'{c} / {m}': n for (c, m), n in data.mix.items()}, 'category / reasoning') if data.mix else ''}
## Licences

{_counts_table(data.licenses, 'licence') if data.licenses else 'No licence column in this kind; see the lineage.'}
Check each source's licence before redistribution (see `curation/data/README.md` for the
bundled sets).

## Rejected rows (this version and its ancestors)

{rejected}
## Training runs on this version

{_runs_markdown(list(runs))}
## How to load it

{load_snippets(manifest, catalog)}
Plots: `report.html` next to this file.
"""


def _shown_stats(manifest: Manifest) -> dict[str, str]:
    return {k: json.dumps(manifest.stats[k], default=str) for k in SHOWN_STATS if k in manifest.stats}


def _html_table(rows: dict[str, Any], header: tuple[str, str]) -> str:
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows.items())
    return f"<table><tr><th>{header[0]}</th><th>{header[1]}</th></tr>{body}</table>"


IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img"), ok = 0;
  images.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { ok += 1; }
    else { img.insertAdjacentHTML("afterend", "<p class='missing'>plot missing: " + img.getAttribute("src") + "</p>"); }
  });
  document.body.setAttribute("data-images-loaded", ok + "/" + images.length);
});
</script>"""

STYLE = """<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
figure{display:inline-block;margin:.5em;vertical-align:top}figcaption{font-size:.9em;color:#555;max-width:540px}
img{max-width:540px}code,pre{background:#f4f4f4}pre{padding:.6em;overflow-x:auto}.missing{color:#b00}
.warning{background:#fff3cd;border:1px solid #e0c36a;padding:.5em}
</style>"""


def page(manifest: Manifest, chain: list[Manifest], data: ReportData,
         plots: list[tuple[str, str]], runs: list[dict[str, Any]] = ()) -> str:
    e = html.escape
    figures = "".join(f'<figure><img src="plots/{e(name)}" alt="{e(caption)}">'
                      f"<figcaption>{e(caption)}</figcaption></figure>" for name, caption in plots)
    chain_rows = "".join(
        f"<tr><td><code>{e(m.ref)}</code></td><td>{e(m.kind)}</td><td>{m.rows}</td>"
        f"<td>{e(m.step.type)}</td><td><code>{e(m.fingerprint[:12])}</code></td>"
        f"<td>{m.rejected.rows}</td></tr>" for m in chain)
    run_rows = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r.values()) + "</tr>"
                       for r in runs)
    run_table = (f"<table><tr>{''.join(f'<th>{e(k)}</th>' for k in runs[0])}</tr>{run_rows}</table>"
                 if runs else "<p>No training run has used this version yet.</p>")
    sample = e(json.dumps(data.sample[:2], indent=2, default=str, ensure_ascii=False)[:4000])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(manifest.ref)} - thinkforge report</title>
{STYLE}</head>
<body>
<h1>{e(manifest.name)} <small>{e(manifest.version)}</small></h1>
<p>A <b>{e(manifest.kind)}</b> version: {manifest.rows} rows, fingerprint
<code>{e(manifest.fingerprint)}</code>, built by step <code>{e(manifest.step.type)}</code> on
{e(manifest.created_at)}.</p>
{_sft_html(manifest, data)}
<h2>Plots</h2>
{figures or '<p>No plots for this kind of version.</p>'}
<h2>Lineage</h2>
<table><tr><th>version</th><th>kind</th><th>rows</th><th>step</th><th>fingerprint</th><th>rejected</th></tr>{chain_rows}</table>
<h2>Counts</h2>
{_html_table(_shown_stats(manifest), ("statistic", "value"))}
<h2>Licences</h2>
{_html_table(data.licenses, ("licence", "rows")) if data.licenses else '<p>See the lineage.</p>'}
<h2>Rejected rows</h2>
{_html_table(data.rejected, ("step: reason", "rows")) if data.rejected else '<p>None.</p>'}
<h2>Training runs on this version</h2>
{run_table}
<h2>Step config</h2>
<pre>{e(json.dumps(manifest.step.config, indent=2, default=str))}</pre>
<h2>Sample rows</h2>
<pre>{sample}</pre>
{IMAGE_CHECK}
</body></html>
"""
