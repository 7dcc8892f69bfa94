import pyarrow as pa
from thinkforge.curation.importer import ImportOptions, import_file


def test_import_gsm8k_preset_publishes_v1(store, data_dir):
    m = import_file(store, data_dir / "gsm8k_train_demo.jsonl", ImportOptions(name="gsm8k", preset="gsm8k"))
    assert (m.name, m.version, m.kind, m.rows) == ("gsm8k", "v1", "prompts", 200)
    table = pa.concat_tables([__import__("pyarrow.parquet").parquet.read_table(p) for p in store.shard_paths(m)])
    row = table.slice(0, 1).to_pylist()[0]
    assert row["input"] == [{"role": "user", "content": row["input"][0]["content"]}]
    assert row["ground_truth"] == "72"  # Natalia's clips: "#### 72"
