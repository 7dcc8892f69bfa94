"""The HTML pages: they render, escape every data string, and carry the security headers."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .conftest import SCRIPT


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_page_renders_with_the_security_headers(console):
    client = console.client(console.admin)
    for path in ("/", "/?search=math", "/v/math-sft@v1", "/v/math-sft@v1?mode=on&verified=true",
                 "/v/math-sft@v1/pair/pair0", "/v/math-sft@v1/lineage", "/sql",
                 '/sql?q=SELECT+*+FROM+"math-sft"', "/runs", "/api"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        # the only script is the static file: nothing inline
        assert response.text.count("<script") == 1 and '<script src="/static/console.js" defer>' in response.text


def test_a_row_holding_a_script_tag_renders_as_text(console):
    client = console.client(console.admin)
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    for path in ("/v/math-sft@v2", "/v/math-sft@v2/pair/evil", '/sql?q=SELECT+*+FROM+"math-sft"'):
        page = client.get(path).text
        assert SCRIPT not in page and page.count("<script") == 1, path  # the static file's tag only
        assert escaped in page, path


def test_the_version_page_shows_filters_rows_pairs_and_rejected_reasons(console):
    page = console.client(console.admin).get("/v/math-sft@v1?mode=off").text
    assert '<option value="off" selected>' in page and "3 rows match" in page
    assert 'href="/v/math-sft@v1/pair/pair0"' in page
    assert "<b>format</b>: 1 rows" in page and "no think block" in page


def test_the_pair_page_collapses_the_reasoning_and_marks_gold_and_answer(console):
    page = console.client(console.admin).get("/v/math-sft@v1/pair/pair2").text
    assert '<details class="reasoning"><summary>Reasoning' in page
    assert '<mark class="gold">6</mark>' in page and '<mark class="extracted">6</mark>' in page
    assert "not verified" in page  # pair2 is verified=false in the fixture


def test_sql_page_shows_errors_and_download_links(console):
    client = console.client(console.admin)
    refused = client.get("/sql", params={"q": "DROP TABLE versions"})
    assert refused.status_code == 200 and "DROP statements are refused" in refused.text
    page = client.get("/sql", params={"q": "SELECT range FROM range(120)"}).text
    assert "rows 1–50" in page and "offset=50" in page and "format=parquet" in page


def test_report_plots_show_on_the_version_page(console, tmp_path):
    m = console.store.resolve("math-sft@v1")
    folder = tmp_path / "reports" / "math-sft"
    (folder / "plots").mkdir(parents=True)
    (folder / "README.md").write_text(f"fingerprint: {m.fingerprint}\n")
    (folder / "plots" / "verified_rate.png").write_bytes(b"\x89PNG fake")
    client = console.client(console.admin, reports_dir=tmp_path / "reports")
    assert 'src="/v/math-sft%40v1/plots/verified_rate.png"' in client.get("/v/math-sft@v1").text
    image = client.get("/v/math-sft@v1/plots/verified_rate.png")
    assert image.status_code == 200 and image.content == b"\x89PNG fake"
    assert client.get("/v/math-sft@v1/plots/..%2FREADME.md").status_code == 404
    assert "plots" not in client.get("/v/math-prompts@v1").text.split("<h2>Rows")[0]


def test_the_console_never_writes_the_store(console):
    before = _snapshot(console.store.root)
    client = console.client(console.admin)
    for path in ("/", "/v/math-sft@v1", "/v/math-sft@v1/pair/pair0", "/v/math-sft@v1/lineage",
                 "/runs", "/api/versions/math-sft@v1/verify", "/api/runs", "/sql?q=SELECT+1"):
        assert client.get(path).status_code == 200
    client.post("/api/sql", json={"query": "COPY versions TO 'x.csv'"})
    assert _snapshot(console.store.root) == before


def test_long_values_are_folded_in_the_row_table(console):
    long_text = "step " * 200
    with console.store.writer("math-long", "prompts", step={"type": "test", "config": {}}) as w:
        w.write([{"id": "a", "source": "s", "category": "math", "verifier": "math", "license": "MIT",
                  "input": [{"role": "user", "content": long_text}], "ground_truth": long_text}])
    page = console.client(console.admin).get("/v/math-long").text
    # folded: a short summary, the whole value (input and ground_truth) once each inside <details>
    assert page.count("<details><summary>") >= 2 and page.count(long_text.strip()) == 2
