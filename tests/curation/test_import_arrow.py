"""Import's Arrow path for Parquet (``arrow_map``: columns mapped with Arrow compute) gives
the version the row-by-row path gives: same fingerprint, same shard and rejected bytes,
same stats, same errors; batches it cannot map exactly go row by row."""

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import thinkforge.curation.arrow_map as arrow_map
import thinkforge.curation.import_job as import_job
import thinkforge.curation.readers as readers
from thinkforge.curation.importer import ImportOptions, import_file
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import InputDataError


def sft_table(n: int, seed: int = 5, messages: bool = False) -> pa.Table:
    """SFT rows with a few that only the row path maps: a blank question, an invalid
    category, a repeated id, an unknown chat role (``messages``)."""
    rnd = random.Random(seed)
    modes = [rnd.choice(["on", "off"]) for _ in range(n)]
    question = [f"What is {i} + {i % 7}? ü" for i in range(n)]
    question[n // 3] = "   "
    category = [rnd.choice(["math", "code", "chat"]) for _ in range(n)]
    category[n // 2] = "poetry"
    ids = [f"s{i}" for i in range(n)]
    ids[2 * n // 3] = ids[5]
    cols = {
        "id": ids, "prompt_id": [f"p{i // 2}" for i in range(n)], "pair_id": [f"p{i // 2}" for i in range(n)],
        "category": pa.array(category).dictionary_encode(), "reasoning": modes,
        "system_prompt": [f"detailed thinking {m}" for m in modes],
        "output": ["<think>x</think> " * rnd.randint(1, 5) + str(i) for i in range(n)],
        "generator": pa.array(["teacher"] * n, pa.large_string()),
        "output_tokens": pa.array([rnd.choice([None, rnd.randint(1, 500)]) for _ in range(n)], pa.int32()),
        "verified": [rnd.choice([True, False, None]) for _ in range(n)],
        "finish_reason": [rnd.choice(["stop", None]) for _ in range(n)],
        "answer": [i for i in range(n)],  # integers into a text field: str(int)
        "extra": [1.5] * n,  # a float nobody maps: dropped by both paths
    }
    if messages:
        roles = [rnd.choice(["user", "system"]) for _ in range(n)]
        roles[n // 4] = "narrator"
        cols["conversation"] = [[{"role": r, "content": q, "lang": "en"}] for r, q in zip(roles, question, strict=True)]
    else:
        cols["question"] = question
    return pa.table(cols)


def import_both(tmp_path, monkeypatch, table, **options):
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path, row_group_size=130)
    monkeypatch.setattr(readers, "BATCH_ROWS", 50)
    monkeypatch.setattr(import_job, "WRITE_ROWS", 120)
    used = {"arrow": 0}
    real = arrow_map.ArrowMapper.map

    def counting(self, t):
        out = real(self, t)
        used["arrow"] += out is not None
        return out

    monkeypatch.setattr(arrow_map.ArrowMapper, "map", counting)
    results = {}
    for side in ("arrow", "rows"):
        if side == "rows":
            monkeypatch.setattr(arrow_map.ArrowMapper, "map", lambda self, t: None)
        try:
            results[side] = import_file(DatasetStore(tmp_path / f"store-{side}"), path,
                                        ImportOptions(name="t", kind="sft", **options))
        except InputDataError as exc:
            results[side] = str(exc)
    return results, used["arrow"]


def same_version(a, b):
    assert a.fingerprint == b.fingerprint
    assert [(f.path, f.rows, f.sha256) for f in a.files] == [(f.path, f.rows, f.sha256) for f in b.files]
    assert a.rejected.by_reason == b.rejected.by_reason
    assert [f.sha256 for f in a.rejected.files] == [f.sha256 for f in b.rejected.files]
    assert a.stats == b.stats and a.rows == b.rows


@pytest.mark.parametrize("options, messages", [
    (dict(mapping={"input": "question"}, on_error="skip", on_duplicate="first"), False),
    (dict(mapping={"input": "Q: {question} ({answer})"}, on_error="skip", on_duplicate="skip"), False),
    (dict(mapping={"input": "conversation"}, on_error="skip", on_duplicate="first"), True),
])
def test_arrow_and_row_paths_publish_identical_versions(tmp_path, monkeypatch, options, messages):
    results, arrow_batches = import_both(tmp_path, monkeypatch, sft_table(1000, messages=messages), **options)
    same_version(results["arrow"], results["rows"])
    assert arrow_batches >= 15  # most of the 20 batches took the Arrow path
    assert results["arrow"].rejected.rows > 0


def test_both_paths_fail_with_the_same_message(tmp_path, monkeypatch):
    results, _ = import_both(tmp_path, monkeypatch, sft_table(400), mapping={"input": "question"})
    assert "row 133" in results["rows"] and results["arrow"] == results["rows"]  # the blank question
    clean = sft_table(400).slice(201)  # past the blank question and the invalid category
    results, _ = import_both(tmp_path / "dup", monkeypatch, pa.concat_tables([clean, clean.slice(0, 1)]),
                             mapping={"input": "question"})
    assert "row 199: duplicate key" in results["rows"] and "first seen at row 0" in results["rows"]
    assert results["arrow"] == results["rows"]


def test_a_clean_file_is_mapped_by_arrow_only(tmp_path, monkeypatch):
    clean = sft_table(1000).slice(700)  # the odd rows are all before row 700
    results, arrow_batches = import_both(tmp_path, monkeypatch, clean, mapping={"input": "question"})
    same_version(results["arrow"], results["rows"])
    assert arrow_batches == 7 and results["arrow"].rows == 300  # row groups of 130, batches of 50


def test_rollouts_with_floats_match_the_row_path(tmp_path, monkeypatch):
    """Floats (a NaN is missing: row by row), integers into a float field, int32 samples."""
    n = 600
    reward = [i / 7 for i in range(n)]
    reward[410] = float("nan")
    table = pa.table({
        "prompt_id": [f"p{i // 4}" for i in range(n)], "sample": pa.array([i % 4 for i in range(n)], pa.int32()),
        "generator": ["g"] * n, "reasoning": ["on" if i % 3 else "off" for i in range(n)],
        "output": [f"answer {i}" for i in range(n)], "correct": [i % 5 == 0 for i in range(n)],
        "reward": reward, "output_tokens": list(range(n)), "score": list(range(n))})
    path = tmp_path / "r.parquet"
    pq.write_table(table, path, row_group_size=200)
    monkeypatch.setattr(readers, "BATCH_ROWS", 50)
    out = {}
    for side in ("arrow", "rows"):
        if side == "rows":
            monkeypatch.setattr(arrow_map.ArrowMapper, "map", lambda self, t: None)
        out[side] = import_file(DatasetStore(tmp_path / side), path, ImportOptions(
            name="r", kind="rollouts", mapping={"format_ok": "correct"}))
    same_version(out["arrow"], out["rows"])
