"""The console's JSON API through the ASGI test client, on a real store."""

from __future__ import annotations

import io
import time

import pyarrow.parquet as pq
import pytest

from .conftest import SCRIPT


def test_catalog_lists_versions_with_kind_rows_fingerprint_and_file_status(console):
    body = console.client(console.admin).get("/api/catalog").json()
    refs = [v["ref"] for v in body["versions"]]
    assert refs == ["code-prompts@v1", "code-sft@v1", "math-prompts@v1", "math-sft@v2", "math-sft@v1"]
    sft = next(v for v in body["versions"] if v["ref"] == "math-sft@v1")
    assert (sft["kind"], sft["rows"], sft["rejected_rows"], sft["status"]) == ("sft", 6, 1, "ok")
    assert sft["fingerprint"] == console.store.resolve("math-sft@v1").fingerprint
    found = console.client(console.admin).get("/api/catalog", params={"search": "code"}).json()
    assert {v["name"] for v in found["versions"]} == {"code-prompts", "code-sft"}


def test_a_damaged_version_shows_in_the_catalog_and_fails_verify(console):
    m = console.store.resolve("code-sft@v1")
    shard = console.store.shard_paths(m)[0]
    shard.write_bytes(shard.read_bytes()[:-5])
    client = console.client(console.admin)
    status = {v["ref"]: v["status"] for v in client.get("/api/catalog").json()["versions"]}
    assert status["code-sft@v1"].startswith("damaged") and status["math-sft@v1"] == "ok"
    assert client.get("/api/versions/code-sft@v1/verify").json()["ok"] is False
    assert client.get("/api/versions/math-sft@v1/verify").json() == {
        "ref": "math-sft@v1", "ok": True, "error": None}


def test_version_has_schema_stats_provenance_and_parents(console):
    body = console.client(console.admin).get("/api/versions/math-sft").json()
    assert body["ref"] == "math-sft@v2" and body["parents"][0]["name"] == "math-sft"
    v1 = console.client(console.admin).get("/api/versions/math-sft@v1").json()
    assert "pair_id" in v1["columns"] and v1["rejected"] == {"rows": 1, "by_reason": {"format": 1}}
    assert v1["step"]["type"] == "generate-sft" and v1["parents"][0]["name"] == "math-prompts"


def test_rows_are_paged_and_filtered_by_mode_and_verified(console):
    client = console.client(console.admin)
    page = client.get("/api/versions/math-sft@v1/rows", params={"size": 4}).json()
    assert page["total"] == 6 and len(page["rows"]) == 4
    rest = client.get("/api/versions/math-sft@v1/rows", params={"size": 4, "offset": 4}).json()
    ids = [r[page["columns"].index("id")] for r in page["rows"] + rest["rows"]]
    assert len(set(ids)) == 6
    on = client.get("/api/versions/math-sft@v1/rows", params={"mode": "on", "verified": "false"}).json()
    assert on["total"] == 1
    row = dict(zip(on["columns"], on["rows"][0], strict=True))
    assert (row["reasoning"], row["verified"], row["id"]) == ("on", False, "s2-on")
    bad = client.get("/api/versions/math-sft@v1/rows", params={"bucket": "easy"})
    assert bad.status_code == 400 and "no column 'bucket'" in bad.json()["error"]


def test_rejected_rows_are_grouped_by_reason_with_examples(console):
    body = console.client(console.admin).get("/api/versions/math-sft@v1/rejected").json()
    (group,) = body["reasons"]
    assert (group["reason"], group["count"]) == ("format", 1)
    example = dict(zip(group["columns"], group["examples"][0], strict=True))
    assert example["detail"] == "no think block"


def test_pair_puts_on_and_off_side_by_side_with_the_reasoning_split_off(console):
    body = console.client(console.admin).get("/api/versions/math-sft@v1/pairs/pair1").json()
    assert body["ground_truth"] == "42"
    assert body["on"]["reasoning"] == "compute What is 7 * 6?"
    assert body["on"]["answer_text"] == "The answer is 42." and body["on"]["verified"] is True
    assert body["off"]["reasoning"] is None and body["off"]["answer"] == "42"
    missing = console.client(console.admin).get("/api/versions/math-sft@v1/pairs/nope")
    assert missing.status_code == 404


def test_lineage_has_ancestors_descendants_and_training_runs(console):
    body = console.client(console.admin).get("/api/versions/math-sft@v1/lineage").json()
    assert [n["ref"] for n in body["ancestors"]] == ["math-prompts@v1"]
    assert [n["ref"] for n in body["descendants"]] == ["math-sft@v2"]
    (run,) = body["training_runs"]
    assert (run["run_id"], run["base_model"], run["weights_sha256"]) == ("run-sft-math-1", "tiny-llama",
                                                                         "ab" * 32)
    assert run["base_model_sha256"] == "cd" * 32  # the weights it started from
    page = console.client(console.admin).get("/training-runs/run-sft-math-1").text
    assert "cd" * 8 in page
    top = console.client(console.admin).get("/api/versions/math-sft@v2/lineage").json()
    assert [(n["ref"], n["depth"]) for n in top["ancestors"]] == [("math-sft@v1", 1), ("math-prompts@v1", 2)]


def test_sql_pages_a_result_and_enforces_the_row_limit(console):
    from thinkforge.console.data import Limits

    client = console.client(console.admin, limits=Limits(max_rows=5))
    body = client.post("/api/sql", json={"query": "SELECT range AS i FROM range(20)", "size": 3}).json()
    assert body["rows"] == [[0], [1], [2]] and body["has_more"]
    last = client.post("/api/sql", json={"query": "SELECT range AS i FROM range(20)", "size": 3,
                                         "offset": 3}).json()
    assert last["rows"] == [[3], [4]] and not last["has_more"] and last["capped"]
    names = client.post("/api/sql", json={"query": 'SELECT count(*) FROM "math-sft@v1"'}).json()
    assert names["rows"] == [[6]]


def test_sql_stops_a_query_at_the_timeout(console):
    from thinkforge.console.data import Limits

    client = console.client(console.admin, limits=Limits(timeout=0.2))
    slow = client.post("/api/sql", json={"query": "SELECT count(*) FROM range(1000000000000)"})
    assert slow.status_code == 422 and "timeout" in slow.json()["error"]


def test_sql_refuses_what_the_cli_refuses(console):
    client = console.client(console.admin)
    for query, needle in [("DELETE FROM versions", "DELETE statements are refused"),
                          ("SELECT 1; SELECT 2", "expected one SQL statement"),
                          ("COPY (SELECT 1) TO '/tmp/x.csv'", "refused"),
                          ("SELECT * FROM read_text('/etc/passwd')", "refused"),
                          ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN ANALYZE")]:
        response = client.post("/api/sql", json={"query": query})
        assert response.status_code == 400, query
        assert needle in response.json()["error"], (query, response.json())


def test_sql_download_as_csv_and_parquet(console):
    client = console.client(console.admin)
    query = 'SELECT id, input FROM "math-sft@v1" ORDER BY id'
    csv = client.get("/api/sql/download", params={"q": query, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == '"id","input"' and len(lines) == 7 and "What is 2 + 3?" in lines[1]
    parquet = client.get("/api/sql/download", params={"q": query, "format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 6 and table.column_names == ["id", "input"]


def test_runs_are_read_live_from_the_checkpoint(console):
    from thinkforge.generators.runs import RunCheckpoint

    from .conftest import _answer

    client = console.client(console.admin)
    run = client.get("/api/runs/math-gen-1").json()
    assert (run["requests"], run["done"], run["errors"], run["tokens"]) == (10, 3, 1, 60)
    assert run["state"] == "running" and run["errors_by_kind"] == {"timeout": 1}
    assert run["tokens_per_s"] > 0 and run["eta_s"] > 0
    checkpoint = RunCheckpoint.attach(console.store.runs_dir / "math-gen-1")
    checkpoint.append([_answer(f"k{i}", run["last_answer_at"] + 1) for i in range(3, 10)])
    again = client.get("/api/runs/math-gen-1").json()
    assert (again["done"], again["errors"], again["state"], again["eta_s"]) == (10, 0, "finished", 0)
    listed = client.get("/api/runs").json()["runs"]  # running ones first
    assert [(r["run_id"], r["state"]) for r in listed] == [("code-gen-1", "running"), ("math-gen-1", "finished")]


def test_data_strings_come_back_as_json_text(console):
    rows = console.client(console.admin).get("/api/versions/math-sft@v2/rows").json()
    assert SCRIPT in rows["rows"][0]


def test_openapi_documents_the_api(console):
    spec = console.client(console.admin).get("/api/openapi.json").json()
    for path in ("/api/catalog", "/api/versions/{ref}", "/api/versions/{ref}/rows", "/api/sql",
                 "/api/versions/{ref}/lineage", "/api/runs"):
        assert path in spec["paths"]
    page = console.client(console.admin).get("/api")
    assert page.status_code == 200 and "/api/versions/{ref}/pairs/{pair_id}" in page.text


def test_catalog_shows_signature_status(console, tmp_path, monkeypatch):
    from thinkforge.manifests.signing import init_key

    monkeypatch.setenv("THINKFORGE_KEY", str(tmp_path / "key.pem"))
    _, _, signer = init_key(console.store.root)
    with console.store.writer("math-signed", "prompts", step={"type": "test", "config": {}}) as w:
        w.write([{"id": "a", "source": "s", "category": "math", "input": [{"role": "user", "content": "q"}],
                  "verifier": "math", "license": "MIT"}])
    client = console.client(console.admin)
    status = {v["ref"]: v["signature"] for v in client.get("/api/catalog").json()["versions"]}
    assert status["math-signed@v1"] == f"signed {signer}" and status["math-sft@v1"] == "unsigned"
    sig = console.store.version_dir(w.manifest) / "manifest.sig"
    sig.write_text(sig.read_text().replace('"signature": "', '"signature": "00'))
    assert client.get("/api/versions/math-signed").json()["signature"] == "bad signature"


def test_a_runs_verified_rate_is_checked_live_against_the_prompts_gold(console):
    pytest.importorskip("math_verify")
    from thinkforge.generators.runs import RunCheckpoint

    from .conftest import _answer

    checkpoint = RunCheckpoint(console.store.runs_dir, "math-gen-2", {
        "name": "math-gen", "prompts": "math-prompts@v1", "requests": 4,
        "step": {"type": "generate-sft", "config": {"reasoning_format": "native"}}})
    texts = {"p0": ("off", "The answer is 5."), "p1": ("on", "<think>7 * 6 = 41</think>\n\nThe answer is 41."),
             "p2": ("off", "The answer is 6.")}
    rows = []
    for prompt_id, (mode, text) in texts.items():
        row = _answer(prompt_id, time.time())
        rows.append({**row, "prompt_id": prompt_id, "mode": mode, "text": text})
    checkpoint.append(rows)
    run = console.client(console.admin).get("/api/runs/math-gen-2").json()
    assert (run["done"], run["verified"]) == (3, 2) and run["verified_rate"] == pytest.approx(2 / 3)
    assert console.client(console.admin).get("/api/runs/math-gen-1").json()["verified_rate"] is None


def test_lineage_graph_puts_generations_in_columns_with_an_edge_per_parent(console):
    g = console.client(console.admin).get("/api/versions/math-sft@v1/lineage").json()["graph"]
    x = {n["ref"]: n["x"] for n in g["nodes"]}
    assert x["math-prompts@v1"] < x["math-sft@v1"] < x["math-sft@v2"]
    assert len(g["edges"]) == 2 and [n["ref"] for n in g["nodes"] if n["current"]] == ["math-sft@v1"]
    page = console.client(console.admin).get("/v/math-sft@v1/lineage").text
    assert page.count('<line ') == 2 and '<svg class="graph"' in page


def test_a_training_run_record_is_shown_in_full_within_the_scope(console):
    record = console.client(console.admin).get("/api/training-runs/run-sft-math-1").json()
    assert (record["base_model"], record["data"][0]["ref"]) == ("tiny-llama", "math-sft@v1")
    page = console.client(console.admin).get("/v/math-sft@v1/lineage").text
    assert 'href="/training-runs/run-sft-math-1"' in page
    assert "tiny-llama" in console.client(console.admin).get("/training-runs/run-sft-math-1").text
    assert console.client(console.math).get("/api/training-runs/run-sft-math-1").status_code == 200
    assert console.client(console.admin).get("/api/training-runs/run-nope").status_code == 404
    assert console.client(console.admin).get("/api/training-runs/..%2F..%2Fetc").status_code == 404
