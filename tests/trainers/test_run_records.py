"""Run records without training: publish, list, show, the catalog's runs table, reuse."""

from __future__ import annotations

import json

import pytest
from thinkforge.manifests.errors import ConflictError, IntegrityError
from thinkforge.manifests.training_runs import RunData, TrainingRuns, new_run_id
from thinkforge.trainers.records import record_run


def _fake_run(store, version, tmp_path, method="sft", config=None):
    out = tmp_path / f"out-{method}-{len(list(TrainingRuns(store)))}"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"weights " + method.encode())
    data = RunData(ref=version.ref, name=version.name, version=version.version, kind=version.kind,
                   fingerprint=version.fingerprint, rows=version.rows)
    return record_run(store, method=method, data=[data], base_model="tiny",
                      config=config or {"lr": 1}, output_dir=out,
                      metrics=[{"step": 1, "loss": 2.5}, {"step": 2, "loss": 1.5}],
                      wall_time_s=1.0, final_metrics={"global_step": 2})


def test_publish_list_show_and_sql_join(store, sft_version, tmp_path, cli_run):
    record = _fake_run(store, sft_version, tmp_path)
    assert (store.root / "training-runs" / record.run_id / "run.json").is_file()
    assert not (store.root / "runs" / record.run_id).exists()  # not with generation checkpoints
    assert TrainingRuns(store).get(record.run_id).weights_sha256 == record.weights_sha256
    assert record.libraries["thinkforge"]

    listed = cli_run("runs", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["run_id"] for r in json.loads(listed.output)] == [record.run_id]
    shown = cli_run("show", record.run_id)
    assert shown.exit_code == 0, shown.output
    assert sft_version.fingerprint in shown.output and record.weights_sha256 in shown.output

    query = ("SELECT r.run_id, v.ref, r.weights_sha256, r.final_loss FROM runs r "
             "JOIN versions v ON v.fingerprint = r.data_fingerprint")
    result = cli_run("sql", query, "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.splitlines()[0])
    assert row == {"run_id": record.run_id, "ref": sft_version.ref,
                   "weights_sha256": record.weights_sha256, "final_loss": 1.5}


def test_catalog_sees_a_second_run(store, sft_version, tmp_path, cli_run):
    _fake_run(store, sft_version, tmp_path)
    assert cli_run("sql", "SELECT count(*) AS n FROM runs", "--format", "csv").output.split()[-1] == "1"
    _fake_run(store, sft_version, tmp_path, method="dpo")
    assert cli_run("sql", "SELECT count(*) AS n FROM runs", "--format", "csv").output.split()[-1] == "2"
    only = cli_run("runs", "--data", sft_version.ref, "--json")
    assert len(json.loads(only.output)) == 2


def test_reuse_needs_same_config_and_weights(store, sft_version, tmp_path):
    record = _fake_run(store, sft_version, tmp_path, config={"lr": 1})
    runs = TrainingRuns(store)
    assert runs.find_reusable("sft", record.config_hash, [sft_version.fingerprint]).run_id == record.run_id
    assert runs.find_reusable("sft", "other", [sft_version.fingerprint]) is None
    assert runs.find_reusable("dpo", record.config_hash, [sft_version.fingerprint]) is None
    weights = tmp_path.glob("out-sft-*/model.safetensors")
    path = next(weights)
    path.write_bytes(b"changed!" + b"x" * 6)  # same size, other bytes
    with pytest.raises(IntegrityError):
        runs.verify_weights(record)
    path.unlink()
    assert runs.find_reusable("sft", record.config_hash, [sft_version.fingerprint]) is None


def test_run_ids_are_unique_and_records_immutable(store, sft_version, tmp_path):
    record = _fake_run(store, sft_version, tmp_path)
    with pytest.raises(ConflictError):
        TrainingRuns(store).publish(record)
    assert new_run_id("sft", "Demo SFT") != new_run_id("sft", "Demo SFT")
    assert new_run_id("sft", "Demo SFT").startswith("run-sft-demo-sft-")


def test_show_unknown_run_is_not_found(cli_run, sft_version):
    result = cli_run("show", "run-sft-nope")
    assert result.exit_code == 3
