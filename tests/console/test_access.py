"""Tokens: 401 without one, hashed at rest, login cookie, and dataset scopes (SQL included)."""

from __future__ import annotations

import json
import stat

import pytest


@pytest.mark.parametrize("path", ["/api/catalog", "/api/versions/math-sft", "/api/runs",
                                  "/api/openapi.json", "/api/sql/download?q=SELECT%201"])
def test_api_without_a_valid_token_is_401(console, path):
    for headers in ({}, {"Authorization": "Bearer tf_wrong"}, {"Authorization": f"Basic {console.admin}"}):
        response = console.client().get(path, headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert console.client().post("/api/sql", json={"query": "SELECT 1"}).status_code == 401


def test_pages_without_a_token_answer_401_with_the_login_form(console):
    for path in ("/", "/v/math-sft", "/sql?q=SELECT+1", "/runs", "/api"):
        response = console.client().get(path)
        assert response.status_code == 401 and 'name="token"' in response.text
    assert console.client().get("/static/console.js").status_code == 200


def test_the_token_file_holds_digests_only(console):
    text = console.token_file.read_text()
    assert console.admin not in text and console.math not in text
    entries = json.loads(text)["tokens"]
    assert [(e["name"], e["datasets"]) for e in entries] == [("admin", "*"), ("mathy", "math-*")]
    assert stat.S_IMODE(console.token_file.stat().st_mode) == 0o600


def test_token_add_prints_the_token_once_and_refuses_a_second_of_the_same_name(cli_run, tmp_path):
    tokens = tmp_path / "t.json"
    first = cli_run("serve", "token", "add", "bob", "--datasets", "math-*", "--token-file", str(tokens))
    assert first.exit_code == 0, first.output
    token = first.output.strip()
    assert token.startswith("tf_") and token not in tokens.read_text()
    again = cli_run("serve", "token", "add", "bob", "--token-file", str(tokens))
    assert again.exit_code == 5 and "already has a token named 'bob'" in again.output


def test_serve_refuses_to_start_without_tokens(cli_run, tmp_path):
    result = cli_run("serve", "--token-file", str(tmp_path / "none.json"))
    assert result.exit_code == 8 and "holds no token" in result.output
    assert cli_run("serve").exit_code == 8


def test_login_sets_an_httponly_strict_cookie_that_opens_the_pages(console):
    client = console.client()
    bad = client.post("/login", data={"token": "tf_nope", "next": "/"})
    assert bad.status_code == 401 and "unknown token" in bad.text
    response = client.post("/login", data={"token": console.math, "next": "/v/math-sft"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/v/math-sft"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and console.math in cookie
    assert client.get("/").status_code == 200  # the client keeps the cookie
    assert client.get("/api/catalog").status_code == 200
    for target in ("//evil.example", "/\\evil.example", "https://evil.example"):
        elsewhere = client.post("/login", data={"token": console.math, "next": target}, follow_redirects=False)
        assert elsewhere.headers["location"] == "/", target
    client.post("/logout")
    assert client.get("/").status_code == 401


def test_a_scoped_token_sees_only_its_datasets(console):
    client = console.client(console.math)
    names = {v["name"] for v in client.get("/api/catalog").json()["versions"]}
    assert names == {"math-prompts", "math-sft"}
    for path in ("/api/versions/code-sft", "/api/versions/code-sft/rows", "/api/versions/code-sft/lineage",
                 "/api/versions/code-sft/pairs/pair1", "/v/code-sft", "/api/runs/code-gen-1"):
        assert client.get(path).status_code == 404, path
    assert [r["run_id"] for r in client.get("/api/runs").json()["runs"]] == ["math-gen-1"]
    unknown = client.get("/api/versions/math-nope")  # the store's own message would list every dataset
    assert unknown.status_code == 404 and "code-" not in unknown.text and str(console.store.root) not in unknown.text
    assert console.client(console.admin).get("/api/versions/code-sft").status_code == 200


def test_for_a_scoped_token_other_views_do_not_exist_in_sql(console):
    client = console.client(console.math)

    def sql(query: str):
        return client.post("/api/sql", json={"query": query})

    for query in ('SELECT * FROM "code-sft"', 'SELECT * FROM "code-sft@v1"', 'SELECT * FROM "code-sft/rejected"',
                  """SELECT * FROM query('SELECT * FROM "code-sft"')"""):
        response = sql(query)
        assert response.status_code == 400 and "does not exist" in response.json()["error"], query
        assert "Did you mean \"code" not in response.json()["error"], query  # no hint at hidden names
    assert sql("SELECT DISTINCT name FROM versions ORDER BY 1").json()["rows"] == [["math-prompts"], ["math-sft"]]
    assert sql("SELECT DISTINCT parent_name FROM lineage ORDER BY 1").json()["rows"] == [["math-prompts"],
                                                                                         ["math-sft"]]
    assert sql('SELECT count(*) FROM "math-sft@v1"').json()["rows"] == [[6]]
    everything = console.client(console.admin).post("/api/sql", json={"query": 'SELECT count(*) FROM "code-sft"'})
    assert everything.json()["rows"] == [[6]]


def test_scoped_lineage_hides_versions_outside_the_scope(console, tmp_path):
    from thinkforge.console import data
    from thinkforge.console.tokens import Principal

    store = console.store
    with store.writer("code-mix", "sft", step={"type": "test.mix", "config": {}},
                      parents=[store.resolve("math-sft@v2")]) as w:
        w.write([{"id": "m1", "prompt_id": "p", "pair_id": "q", "category": "code", "reasoning": "off",
                  "system_prompt": "detailed thinking off", "input": [{"role": "user", "content": "x"}], "output": "y",
                  "generator": "g", "license": "MIT"}])
    scoped = console.client(console.math)
    assert scoped.get("/api/versions/code-mix").status_code == 404
    with store.writer("math-child", "sft", step={"type": "test.mix", "config": {}},
                      parents=[store.resolve("code-mix")]) as w2:
        w2.write([{"id": "m2", "prompt_id": "p", "pair_id": "q", "category": "code", "reasoning": "off",
                   "system_prompt": "detailed thinking off", "input": [{"role": "user", "content": "x"}],
                   "output": "y", "generator": "g", "license": "MIT"}])
    child = scoped.get("/api/versions/math-child").json()
    assert child["parents"] == [{"hidden": True}] and "code-mix" not in scoped.get("/v/math-child").text
    found = data.lineage(store, Principal("m", "math-*"), "math-sft@v2")
    assert found["descendants"] == [{"ref": None, "depth": 1, "hidden": True, "missing": False}]
    assert data.lineage(store, Principal("all"), "math-sft@v2")["descendants"][0]["ref"] == "code-mix@v1"


def test_thinkforge_serve_answers_on_loopback(console):
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "thinkforge", "--store", str(console.store.root), "serve",
                               "--token-file", str(console.token_file), "--port", str(port)],
                              stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(base + "/login", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(base + "/api/catalog").status_code == 401
        body = httpx.get(base + "/api/catalog", headers={"Authorization": f"Bearer {console.math}"}).json()
        assert {v["name"] for v in body["versions"]} == {"math-prompts", "math-sft"}
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert f"thinkforge console: http://127.0.0.1:{port}/" in err


def test_a_training_run_on_other_datasets_does_not_exist_for_a_scoped_token(console):
    from thinkforge.manifests.training_runs import RunData, RunRecord, TrainingRuns

    code = console.store.resolve("code-sft")
    TrainingRuns(console.store).publish(RunRecord(
        run_id="run-sft-code-1", method="sft", base_model="b", output_dir="/tmp/w", data=[RunData(
            ref=code.ref, name=code.name, version=code.version, kind=code.kind,
            fingerprint=code.fingerprint, rows=code.rows)]))
    assert console.client(console.math).get("/api/training-runs/run-sft-code-1").status_code == 404
    assert console.client(console.math).get("/training-runs/run-sft-code-1").status_code == 404
    assert console.client(console.admin).get("/api/training-runs/run-sft-code-1").status_code == 200
    query = {"query": "SELECT run_id FROM runs ORDER BY 1"}
    assert console.client(console.math).post("/api/sql", json=query).json()["rows"] == [["run-sft-math-1"]]


def test_a_removed_token_is_refused_at_once_and_list_never_prints_tokens(console, cli_run):
    client = console.client(console.math)
    assert client.get("/api/catalog").status_code == 200
    listed = cli_run("serve", "token", "list", "--token-file", str(console.token_file))
    assert listed.output.splitlines()[1].startswith("mathy\tmath-*\t") and console.math not in listed.output
    assert cli_run("serve", "token", "remove", "mathy", "--token-file", str(console.token_file)).exit_code == 0
    assert client.get("/api/catalog").status_code == 401  # the file is read per request
    missing = cli_run("serve", "token", "remove", "mathy", "--token-file", str(console.token_file))
    assert missing.exit_code == 3 and "no token named 'mathy'" in missing.output
    assert console.client(console.admin).get("/api/catalog").status_code == 200
