"""Import's columnar path (Arrow parses and maps a plain JSONL batch) gives the version the
row-by-row path gives: same fingerprint, same shard and rejected bytes, same errors."""

import json
import random

import pytest
import thinkforge.curation.import_job as importer
import thinkforge.curation.readers as readers
from thinkforge.curation.columnar import json_strings
from thinkforge.curation.importer import ImportOptions, import_file
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import InputDataError

TEXTS = ["plain", 'quote " and \\ backslash', "tab\tnew\nline", "ctl \u0001 \u001f", "ünïcødé ✓ 😀",
         "</script>", "form\ffeed\bback\rreturn", "  padded  "]


def messy_rows(n: int, seed: int = 7) -> list[str]:
    """JSONL lines: extra columns of every scalar type, nulls, missing keys, given ids,
    repeated questions, CRLF, blank lines, a float, a malformed line, a non-object."""
    rnd = random.Random(seed)
    lines = []
    for i in range(n):
        row = {"question": f"{rnd.choice(TEXTS)} #{i % (n // 3)}", "answer": str(i)}
        if rnd.random() < 0.5:
            row["level"] = rnd.choice([1, -5, None, 2**40])
        if rnd.random() < 0.5:
            row["subject"] = rnd.choice(TEXTS + [None])
        if rnd.random() < 0.3:
            row["flag"] = rnd.choice([True, False, None])
        if rnd.random() < 0.05:
            row["id"] = f"given-{i}"
        if i in (n // 3, n // 3 + 1):
            row["answer"] = i  # a number as text (its batch: a column of mixed types, row by row)
        line = json.dumps(row, ensure_ascii=rnd.random() < 0.5)
        if i == n // 2:
            line = json.dumps({**row, "score": 0.5})  # a float shown in metadata: row by row
        if i == n // 4:
            line = '{"question": "broken", '  # malformed: rejected (skip) or the error (fail)
        if i == 3 * n // 4:
            line = '["not", "an", "object"]'
        lines.append(line + ("\r\n" if rnd.random() < 0.1 else "\n"))
        if rnd.random() < 0.02:
            lines.append("\n")
    return lines


def import_both(tmp_path, monkeypatch, lines, **options):
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    monkeypatch.setattr(readers, "BATCH_ROWS", 50)
    monkeypatch.setattr(importer, "WRITE_ROWS", 120)
    used = {"columnar": 0}
    real = importer.ColumnarMapper.map

    def counting(self, table, con):
        out = real(self, table, con)
        used["columnar"] += out is not None
        return out

    monkeypatch.setattr(importer.ColumnarMapper, "map", counting)
    results = {}
    for side in ("columnar", "rows"):
        if side == "rows":
            monkeypatch.setattr(importer, "read_plain", lambda batch: None)
        store = DatasetStore(tmp_path / f"store-{side}")
        try:
            results[side] = import_file(store, path, ImportOptions(name="t", **options))
        except InputDataError as exc:
            results[side] = str(exc)
    return results, used["columnar"]


def same_version(a, b):
    assert a.fingerprint == b.fingerprint
    assert [(f.path, f.rows, f.sha256) for f in a.files] == [(f.path, f.rows, f.sha256) for f in b.files]
    assert a.digests.sha256 == b.digests.sha256
    assert a.rejected.by_reason == b.rejected.by_reason
    assert [f.sha256 for f in a.rejected.files] == [f.sha256 for f in b.rejected.files]
    assert a.stats == b.stats and a.rows == b.rows


@pytest.mark.parametrize("options", [
    dict(category="math", mapping={"input": "question", "ground_truth": "answer"}, on_error="skip",
         on_duplicate="first"),
    dict(category="code", license="MIT", source="s\"rc", on_error="skip", on_duplicate="skip",
         mapping={"input": "Q: {question}\\n{level} {flag} {subject}", "ground_truth": "answer"}),
    dict(category="math", mapping={"input": "question", "metadata": "subject"}, on_error="skip",
         on_duplicate="first"),
])
def test_columnar_and_row_paths_publish_identical_versions(tmp_path, monkeypatch, options):
    results, columnar_batches = import_both(tmp_path, monkeypatch, messy_rows(1200), **options)
    same_version(results["columnar"], results["rows"])
    assert columnar_batches >= 15  # most of the 24 batches took the columnar path
    assert results["columnar"].rejected.rows > 0


def test_both_paths_fail_with_the_same_message(tmp_path, monkeypatch):
    results, _ = import_both(tmp_path, monkeypatch, messy_rows(400), category="math",
                             mapping={"input": "question"}, on_duplicate="first")
    assert isinstance(results["rows"], str) and ", line 10" in results["rows"]
    assert "malformed JSON" in results["rows"]
    assert results["columnar"] == results["rows"]
    lines = [json.dumps({"question": f"q{i % 60}", "n": i}) + "\n" for i in range(90)]
    results, _ = import_both(tmp_path / "dup", monkeypatch, lines, category="math", mapping={"input": "question"})
    assert "duplicate key" in results["rows"] and results["columnar"] == results["rows"]


def test_a_clean_file_is_mapped_by_arrow_only(tmp_path, monkeypatch):
    lines = [json.dumps({"question": f"q{i}", "answer": str(i), "n": i}) + "\n" for i in range(500)]
    results, columnar_batches = import_both(tmp_path, monkeypatch, lines, category="math",
                                            mapping={"input": "question", "ground_truth": "answer"})
    same_version(results["columnar"], results["rows"])
    assert columnar_batches == 10


def test_json_strings_escape_as_the_json_module_does():
    import pyarrow as pa

    values = TEXTS + [None, "", "\u007f\u2028"]
    got = json_strings(pa.array(values, pa.string())).to_pylist()
    assert got == [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
