"""Import: presets, mapping, every record kind, and bad input."""

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from thinkforge.curation.importer import ImportOptions, import_file
from thinkforge.manifests.errors import ConfigError, InputDataError

# the project's shared data: $THINKFORGE_SHARED_DATA, else beside the clone, else the workplace copy
SHARED = next((p for p in (Path(os.environ.get("THINKFORGE_SHARED_DATA", "/nonexistent")),
                           Path(__file__).resolve().parents[3] / "shared" / "data",
                           Path("/work/shared/data")) if p.is_dir()), Path("/nonexistent"))
PRESET_OF = {"gsm8k_train": "gsm8k", "gsm8k_test": "gsm8k", "math500_test": "math500", "humaneval": "humaneval"}


def rows_of(store, m):
    return pa.concat_tables(pq.read_table(p) for p in store.shard_paths(m)).to_pylist()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not at {SHARED} (set THINKFORGE_SHARED_DATA)")
@pytest.mark.parametrize("stem", sorted(PRESET_OF))
def test_every_shared_data_file_imports(store, stem):
    path = SHARED / f"{stem}.jsonl"
    m = import_file(store, path, ImportOptions(name=stem.replace("_", "-"), preset=PRESET_OF[stem]))
    assert m.rows == sum(1 for line in path.open() if line.strip())
    assert m.rejected.rows == 0
    row = rows_of(store, m)[0]
    assert row["ground_truth"] and row["input"][0]["role"] == "user"


def test_presets_fill_ground_truth_and_metadata(store, data_dir):
    gsm = rows_of(store, import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                                     ImportOptions(name="g", preset="gsm8k")))
    assert gsm[0]["ground_truth"] == "72" and "48/2" in json.loads(gsm[0]["metadata"])["solution"]
    math = rows_of(store, import_file(store, data_dir / "math500_demo.jsonl",
                                      ImportOptions(name="m", preset="math500")))
    assert math[0]["ground_truth"] == r"\left( 3, \frac{\pi}{2} \right)"
    assert json.loads(math[0]["metadata"])["subject"] == "Precalculus"
    he = rows_of(store, import_file(store, data_dir / "humaneval.jsonl", ImportOptions(name="h", preset="humaneval")))
    assert he[0]["verifier"] == "code" and he[0]["ground_truth"].rstrip().endswith("check(has_close_elements)")
    assert json.loads(he[0]["metadata"])["entry_point"] == "has_close_elements"


def test_map_column_template_and_number_to_string(store, tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [
        {"title": "Sum", "body": "What is 2 + 2?", "answer": 4, "extra": "kept"},
        {"title": "Product", "body": "What is 3 * 3?", "answer": 9.5, "extra": "kept"}])
    m = import_file(store, path, ImportOptions(
        name="qa", category="math", license="CC-BY-4.0",
        mapping={"input": "{title}: {body}", "ground_truth": "answer"}))
    rows = rows_of(store, m)
    assert rows[0]["input"] == [{"role": "user", "content": "Sum: What is 2 + 2?"}]
    assert [r["ground_truth"] for r in rows] == ["4", "9.5"]
    assert rows[0]["verifier"] == "math" and rows[0]["license"] == "CC-BY-4.0"
    assert json.loads(rows[0]["metadata"]) == {"extra": "kept"}
    assert rows[0]["source"] == "qa" and len(rows[0]["id"]) == 16


def test_csv_and_parquet_and_json_inputs(store, tmp_path):
    (tmp_path / "a.csv").write_text("question,answer\n\"What is 1+1?\",2\n", encoding="utf-8")
    pq.write_table(pa.table({"question": ["What is 2+2?"], "answer": [4]}), tmp_path / "b.parquet")
    (tmp_path / "c.json").write_text(json.dumps([{"question": "What is 3+3?", "answer": "6"}]))
    for i, name in enumerate(("a.csv", "b.parquet", "c.json")):
        m = import_file(store, tmp_path / name, ImportOptions(
            name=f"in{i}", category="math", mapping={"input": "question", "ground_truth": "answer"}))
        assert rows_of(store, m)[0]["ground_truth"] == str(2 * (i + 1))


def test_hf_dataset_folder(store, tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{"question": "What is 5+5?", "answer": "10"}]).save_to_disk(tmp_path / "hf")
    m = import_file(store, tmp_path / "hf", ImportOptions(
        name="hf", category="math", mapping={"input": "question", "ground_truth": "answer"}))
    assert m.step.config["format"] == "hf" and m.rows == 1


def test_other_kinds_import_with_validation(store, tmp_path):
    path = write_jsonl(tmp_path / "rollouts.jsonl", [
        {"prompt_id": "p1", "sample": i, "generator": "elsewhere", "reasoning": "on",
         "completion": f"<think>t</think> {i}", "correct": i == 0, "reward": 1.0 if i == 0 else 0.0}
        for i in range(3)])
    m = import_file(store, path, ImportOptions(name="ro", kind="rollouts", mapping={"output": "completion"}))
    assert m.kind == "rollouts" and m.rows == 3
    assert m.stats["correct_rate"]["on"]["true"] == 1
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt_id": "p", "sample": "first", "generator": "g",
                                                "reasoning": "on", "output": "x"}])
    with pytest.raises(InputDataError, match=r"line 1: wrong type: sample: expected an integer"):
        import_file(store, bad, ImportOptions(name="ro2", kind="rollouts"))


def assert_nothing_published(store):
    assert store.names() == []
    staging = store.root / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_malformed_json_line_names_file_and_line(store, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"question": "ok?", "answer": "#### 1"}\n{"question": "broken\n', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"broken\.jsonl, line 2: malformed JSON"):
        import_file(store, path, ImportOptions(name="b", preset="gsm8k"))
    assert_nothing_published(store)


def test_missing_mapped_column_lists_existing_columns(store, tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(InputDataError, match=r"column 'prompt' does not exist") as info:
        import_file(store, path, ImportOptions(name="q", category="math", mapping={"input": "prompt"}))
    assert "question, answer" in str(info.value)
    assert_nothing_published(store)


def test_empty_non_utf8_wrong_type_and_duplicates(store, tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(InputDataError, match="empty"):
        import_file(store, tmp_path / "empty.jsonl", ImportOptions(name="e", preset="gsm8k"))
    (tmp_path / "latin.jsonl").write_bytes(b'{"question": "caf\xe9", "answer": "#### 1"}\n')
    with pytest.raises(InputDataError, match=r"line 1: not valid UTF-8"):
        import_file(store, tmp_path / "latin.jsonl", ImportOptions(name="l", preset="gsm8k"))
    write_jsonl(tmp_path / "typed.jsonl", [{"question": {"nested": 1}, "answer": "#### 1"}])
    with pytest.raises(InputDataError, match=r"line 1: wrong type: input"):
        import_file(store, tmp_path / "typed.jsonl", ImportOptions(name="t", preset="gsm8k"))
    write_jsonl(tmp_path / "dup.jsonl", [{"question": "same", "answer": "#### 1"}] * 2)
    with pytest.raises(InputDataError, match=r"line 2: duplicate key: id .*first seen at line 1"):
        import_file(store, tmp_path / "dup.jsonl", ImportOptions(name="d", preset="gsm8k"))
    assert_nothing_published(store)


def test_on_error_skip_keeps_bad_rows_in_rejected_with_reasons(store, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        json.dumps({"question": "good one", "answer": "#### 1"}),
        '{"question": ',
        json.dumps({"question": "no final answer", "answer": "1"}),
        json.dumps({"question": "good one", "answer": "#### 1"}),
        json.dumps({"question": "good two", "answer": "#### 2"})]) + "\n", encoding="utf-8")
    m = import_file(store, path, ImportOptions(name="mixed", preset="gsm8k", on_error="skip"))
    assert m.rows == 2
    assert m.rejected.by_reason == {"duplicate key": 1, "malformed JSON": 1, "missing value": 1}
    rejected = pq.read_table(store.rejected_paths(m)[0]).to_pylist()
    assert [r["location"] for r in rejected] == ["line 2", "line 3", "line 4"]
    store.verify(m)


def test_unknown_preset_field_and_bad_enum(store, tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "q"}])
    with pytest.raises(ConfigError, match="unknown field"):
        import_file(store, path, ImportOptions(name="q", mapping={"inputs": "question"}))
    with pytest.raises(InputDataError, match="category 'poetry' is not one of"):
        import_file(store, path, ImportOptions(name="q", category="poetry", mapping={"input": "question"}))
    with pytest.raises(InputDataError, match="required field 'category'"):
        import_file(store, path, ImportOptions(name="q", mapping={"input": "question"}))


def test_reimporting_the_same_file_reuses_the_version(store, data_dir):
    a = import_file(store, data_dir / "math500_demo.jsonl", ImportOptions(name="m", preset="math500"))
    b = import_file(store, data_dir / "math500_demo.jsonl", ImportOptions(name="m", preset="math500"))
    assert a.version == b.version == "v1"
