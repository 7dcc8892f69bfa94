"""Import of hostile and careless inputs (issue 13 items 6-7, issue 9 items 7 and 11, issue 16
item 9): a one-line error naming the file and where, a hint, the documented exit code, and
nothing published; or, where the input is fine after all, the rows as they are."""

from __future__ import annotations

import json
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from thinkforge.curation.columnar import key_hashes
from thinkforge.curation.importer import ImportOptions, RowMapper, import_file, stable_id
from thinkforge.manifests.duck import connect
from thinkforge.manifests.errors import ConfigError, InputDataError

from .test_import import assert_nothing_published, rows_of, write_jsonl

QA = {"question": "What is 2+2?", "answer": "4"}
MAP = ["--category", "math", "--map", "input=question", "--map", "ground_truth=answer"]


def check_error(result, store, code: int, *needles: str) -> str:
    """One error line naming what was wrong (and a hint line), the exit code, no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    err = result.stderr
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) == 2 and lines[1].startswith("  hint: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    assert_nothing_published(store)
    return lines[0]


def corrupt_parquet(path):
    rows = [{"question": f"What is {i}+{i}? " + "pad " * 50, "answer": str(2 * i)} for i in range(5000)]
    pq.write_table(pa.Table.from_pylist(rows), path, compression="none", row_group_size=1000)
    data = bytearray(path.read_bytes())
    meta = pq.ParquetFile(path).metadata
    start = meta.row_group(2).column(0).data_page_offset
    data[start + 40:start + 4000] = b"\xff" * 3960  # the page header stays, its values are junk
    path.write_bytes(bytes(data))
    return path


BAD_FILES = {
    # name: (file maker, extra CLI args, exit code, words the error line must contain)
    "corrupt parquet pages": (lambda d: corrupt_parquet(d / "bad.parquet"), [], 6,
                              ["bad.parquet", "row group 2", "corrupt Parquet"]),
    "directory as a jsonl file": (lambda d: (d / "folder.jsonl").mkdir() or d / "folder.jsonl", [], 6,
                                  ["folder.jsonl", "is a directory"]),
    "directory given with --format csv": (lambda d: (d / "f").mkdir() or d / "f", ["--format", "csv"], 6,
                                          ["is a directory"]),
    "JSON nested 100k deep": (lambda d: _text(d / "deep.jsonl", json.dumps(QA) + "\n" + '{"question": '
                                              + "[" * 100_000 + "]" * 100_000 + "}\n"), [], 6,
                              ["deep.jsonl", "line 2", "nested too deep"]),
    "JSON array nested 100k deep": (lambda d: _text(d / "deep.json", "[" * 100_000 + "]" * 100_000), [], 6,
                                    ["deep.json", "nested too deep"]),
    "lone surrogate escape": (lambda d: _text(d / "sur.jsonl", json.dumps(QA) + "\n"
                                              + '{"question": "x \\ud800 y", "answer": "1"}\n'), [], 6,
                              ["sur.jsonl", "line 2", "lone surrogate"]),
    "5000-digit integer into an integer field": (
        lambda d: _text(d / "big.jsonl", json.dumps({"prompt_id": "p", "sample": 1, "generator": "g",
                                                     "reasoning": "on", "output": "x"})[:-1]
                        .replace('"sample": 1', '"sample": ' + "7" * 5000) + "}\n"),
        ["--kind", "rollouts"], 6, ["big.jsonl", "line 1", "sample", "64-bit"]),
    "template format spec": (lambda d: write_jsonl(d / "t.jsonl", [QA]), ["--map", "input={question:d}"], 8,
                             ["--map input", "{question:d}", "format spec"]),
    "template conversion": (lambda d: write_jsonl(d / "t.jsonl", [QA]), ["--map", "input={question!x}"], 8,
                            ["{question!x}", "conversion"]),
    "template unbalanced brace": (lambda d: write_jsonl(d / "t.jsonl", [QA]), ["--map", "input={question"], 8,
                                  ["{question", "never closed"]),
    "template stray closing brace": (lambda d: write_jsonl(d / "t.jsonl", [QA]), ["--map", "input=a}b"], 8,
                                     ["unmatched '}'"]),
    "template empty braces": (lambda d: write_jsonl(d / "t.jsonl", [QA]), ["--map", "input=x {} y"], 8,
                              ["empty braces"]),
    "not UTF-8 CSV": (lambda d: _bytes(d / "l.csv", b"question,answer\nok,1\ncaf\xe9,2\n"),
                      [], 6, ["l.csv", "not valid UTF-8"]),
    "CSV row with more fields than the header": (
        lambda d: _bytes(d / "n.csv", b"question,answer\nok,1\na,2,3\n"), [], 6,
        ["n.csv", "line 3", "more fields than the header"]),
    "truncated parquet": (lambda d: _bytes(d / "t.parquet", b"PAR1" + b"\0" * 20), [], 6,
                          ["t.parquet", "not a readable Parquet file"]),
    "wrong preset": (lambda d: write_jsonl(d / "m.jsonl", [{"problem": "p", "solution": "s", "answer": "1"}]),
                     ["--preset", "gsm8k"], 6, ["--preset gsm8k expects column(s) question, answer",
                                                 "the file has problem, solution, answer"]),
}


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _text(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_is_one_line_error_and_nothing_published(cli_run, store, tmp_path, case):
    make, args, code, needles = BAD_FILES[case]
    path = make(tmp_path)
    base = [] if "--preset" in args else (["--category", "math", "--map", "ground_truth=answer"]
                                          + ([] if any(a.startswith("input=") for a in args)
                                             else ["--map", "input=question"]))
    if "--kind" in args:
        base = []
    check_error(cli_run("import", str(path), "--name", "bad", *base, *args), store, code, *needles)


def test_bad_inputs_tried_count():
    assert len(BAD_FILES) >= 15  # the closing note counts these plus the accepted ones below


def test_csv_field_over_131072_chars_imports(store, tmp_path):
    long = "x" * 300_000
    (tmp_path / "long.csv").write_text(f"question,answer\n\"{long}\",1\n", encoding="utf-8")
    m = import_file(store, tmp_path / "long.csv", ImportOptions(
        name="long", category="math", mapping={"input": "question", "ground_truth": "answer"}))
    assert rows_of(store, m)[0]["input"][0]["content"] == long


def test_5000_digit_integer_is_kept_as_its_digits(store, tmp_path):
    big = "9" * 5000
    _text(tmp_path / "big.jsonl", '{"question": "How big?", "answer": ' + big + ', "n": ' + big + '}\n')
    m = import_file(store, tmp_path / "big.jsonl", ImportOptions(
        name="big", category="math", mapping={"input": "question", "ground_truth": "answer"}))
    row = rows_of(store, m)[0]
    assert row["ground_truth"] == big and json.loads(row["metadata"]) == {"n": big}


def test_nan_is_missing_not_the_text_nan(store, tmp_path):
    _text(tmp_path / "nan.jsonl", '{"question": "q1", "answer": NaN, "score": NaN, "w": Infinity}\n'
                                  '{"question": "q2", "answer": 3}\n')
    pq.write_table(pa.table({"question": ["q3"], "answer": [float("nan")]}), tmp_path / "nan.parquet")
    for i, name in enumerate(("nan.jsonl", "nan.parquet")):
        m = import_file(store, tmp_path / name, ImportOptions(
            name=f"n{i}", category="math", mapping={"input": "question", "ground_truth": "answer"}))
        rows = rows_of(store, m)
        assert rows[0]["ground_truth"] is None
        assert "nan" not in str(rows[0]["metadata"]).lower()


def test_columns_come_from_every_row_not_row_one(store, tmp_path):
    write_jsonl(tmp_path / "late.jsonl", [
        {"question": "q1", "answer": "1"},
        {"question": "q2", "answer": "2", "subject": "algebra"},
        {"question": "q3", "answer": "3", "hint": {"a": [1, 2]}, "title": "T"}])
    m = import_file(store, tmp_path / "late.jsonl", ImportOptions(
        name="late", category="math", mapping={"input": "{question} ({title})", "ground_truth": "answer"}))
    rows = rows_of(store, m)
    assert rows[0]["metadata"] is None
    assert json.loads(rows[1]["metadata"]) == {"subject": "algebra"}
    assert json.loads(rows[2]["metadata"]) == {"hint": {"a": [1, 2]}}
    assert rows[2]["input"][0]["content"] == "q3 (T)" and rows[0]["input"][0]["content"] == "q1 ()"
    # a mapped column that row 1 lacks is not 'missing from the file'
    write_jsonl(tmp_path / "later.jsonl", [{"q": "x"}, {"q": "y", "prompt": "What?"}])
    with pytest.raises(InputDataError, match=r"line 1: missing value: required field 'input'"):
        import_file(store, tmp_path / "later.jsonl", ImportOptions(name="x", category="math",
                                                                   mapping={"input": "prompt"}))
    m = import_file(store, tmp_path / "later.jsonl", ImportOptions(
        name="later", category="math", mapping={"input": "prompt"}, on_error="skip"))
    assert m.rows == 1 and m.rejected.rows == 1
    with pytest.raises(InputDataError, match=r"column 'nope' does not exist") as info:
        import_file(store, tmp_path / "later.jsonl", ImportOptions(name="y", category="math",
                                                                   mapping={"input": "nope"}))
    assert "q, prompt" in str(info.value)


def test_template_values_are_text_never_python_reprs(store, tmp_path):
    write_jsonl(tmp_path / "n.jsonl", [{"q": "Q", "ctx": {"b": [1, "x"], "a": None}, "flag": True,
                                        "n": 2.5, "none": None}])
    m = import_file(store, tmp_path / "n.jsonl", ImportOptions(
        name="n", category="math", mapping={"input": "{q} {ctx} {flag} {n} [{none}]"}))
    assert rows_of(store, m)[0]["input"][0]["content"] == 'Q {"b": [1, "x"], "a": null} true 2.5 []'


def test_template_escapes_newline_tab_and_literal_backslash(cli_run, store, tmp_path):
    write_jsonl(tmp_path / "t.jsonl", [{"title": "T", "body": "B", "answer": "1"}])
    result = cli_run("import", str(tmp_path / "t.jsonl"), "--name", "t", "--category", "math",
                     "--map", r"input={title}\n\n{body}\t\\n\\{{x}}\boxed")
    assert result.exit_code == 0, result.output
    content = rows_of(store, store.resolve("t"))[0]["input"][0]["content"]
    assert content == "T\n\nB\t\\n\\{x}\\boxed"


def test_ids_built_without_dicts_equal_stable_id(store, tmp_path):
    texts = ["plain", 'quote " and \\ backslash', "tab\tnew\nline\u0001ctl", "ünïcødé ✓ 😀", "</script>"]
    write_jsonl(tmp_path / "ids.jsonl", [{"question": t} for t in texts])
    m = import_file(store, tmp_path / "ids.jsonl", ImportOptions(
        name="ids", category="math", source='s"rc', mapping={"input": "question"}))
    got = [r["id"] for r in rows_of(store, m)]
    assert got == [stable_id('s"rc', [{"role": "user", "content": t}]) for t in texts]


def test_batch_and_row_by_row_mapping_agree(tmp_path):
    rows = [{"question": "q1", "answer": 4, "x": 1.0, "meta": {"k": "v"}},
            {"question": [{"role": "user", "content": "q2"}], "answer": 9.5, "license": "MIT"},
            {"question": "q3", "answer": None, "category": "code", "verifier": "code"}]
    mapper = RowMapper(ImportOptions(name="a", category="math", source="s",
                                     mapping={"input": "question", "ground_truth": "answer"}), None, "f")
    batch = mapper.map_batch(rows)
    one_by_one = [mapper.map_batch([r]) for r in rows]
    assert batch.to_pylist() == [t.to_pylist()[0] for t in one_by_one]
    con = connect()
    assert key_hashes(con, batch, ("id",)).tolist() == [key_hashes(con, t, ("id",))[0] for t in one_by_one]
    assert [r["ground_truth"] for r in batch.to_pylist()] == ["4", "9.5", None]


def test_wrong_preset_names_expected_and_present_columns(store, data_dir):
    with pytest.raises(InputDataError) as info:
        import_file(store, data_dir / "math500_demo.jsonl", ImportOptions(name="w", preset="gsm8k"))
    text = str(info.value)
    assert "--preset gsm8k expects column(s) question, answer" in text and "problem" in text
    assert "math500" in text  # the hint lists the presets


def test_on_duplicate_fail_counts_them_all(cli_run, store, tmp_path):
    rows = [{"question": f"q{i % 4}", "answer": "1"} for i in range(10)]  # 4 keys, 6 repeats
    write_jsonl(tmp_path / "dup.jsonl", rows)
    line = check_error(cli_run("import", str(tmp_path / "dup.jsonl"), "--name", "d", *MAP), store, 6,
                       "line 5: duplicate key", "first seen at line 1", "6 rows in all", "4 keys")
    assert "dup.jsonl" in line


@pytest.mark.parametrize("policy,kept,rejected", [("first", 5, 5), ("skip", 1, 9)])
def test_on_duplicate_first_and_skip(cli_run, store, tmp_path, policy, kept, rejected):
    rows = [{"question": f"q{i % 4}" if i < 9 else "unique", "answer": str(i)} for i in range(10)]
    write_jsonl(tmp_path / "dup.jsonl", rows)  # q0..q3 repeat (9 rows), 'unique' once
    result = cli_run("import", str(tmp_path / "dup.jsonl"), "--name", "d", *MAP, "--on-duplicate", policy)
    assert result.exit_code == 0, result.output
    m = store.resolve("d")
    assert (m.rows, m.rejected.rows) == (kept, rejected)
    got = {r["ground_truth"] for r in rows_of(store, m)}
    assert got == ({"0", "1", "2", "3", "9"} if policy == "first" else {"9"})
    rej = pq.read_table(store.rejected_paths(m)[0]).to_pylist()
    assert {r["reason"] for r in rej} == {"duplicate key"}
    first = {r["location"]: r["first_seen"] for r in rej}
    assert first["line 5"] == "line 1" and first["line 8"] == "line 4"
    if policy == "skip":
        assert first["line 1"] == "line 1"  # the first row of a repeated key goes too
    store.verify(m)


def test_import_streams_with_flat_memory(store, tmp_path):
    """Rows are mapped and written batch by batch: three times the rows, about the same peak."""
    peaks = []
    for n in (30_000, 90_000):
        path = tmp_path / f"many{n}.jsonl"
        with path.open("w") as f:
            for i in range(n):
                f.write(json.dumps({"question": f"What is {i} plus {i}? " + "word " * 20,
                                    "answer": str(2 * i), "level": i % 5}) + "\n")
        tracemalloc.start()
        try:
            m = import_file(store, path, ImportOptions(name=f"many{n}", category="math",
                                                       mapping={"input": "question", "ground_truth": "answer"}))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert m.rows == n
    assert peaks[1] < 1.4 * peaks[0], [f"{p / 2**20:.1f} MiB" for p in peaks]


def test_on_duplicate_is_validated(store, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [QA])
    with pytest.raises(ConfigError, match="--on-duplicate"):
        import_file(store, tmp_path / "a.jsonl", ImportOptions(name="a", category="math",
                                                               mapping={"input": "question"}, on_duplicate="x"))


def test_duckdb_never_draws_its_progress_bar_on_stdout():
    """DuckDB prints a progress bar on stdout (even into a pipe) for queries over ~2 s: a
    10M-row import printed it before its ref, and `sql --format csv` would mix it into the
    data. Every connection thinkforge opens has it off (filters show progress on stderr)."""
    from thinkforge.manifests.duck import connect
    from thinkforge.manifests.sql import sandbox_connection

    for con in (connect(), sandbox_connection()):
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False
