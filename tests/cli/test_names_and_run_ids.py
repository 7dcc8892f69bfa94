"""Names and run ids are checked at the CLI boundary, before any work: none reaches the
filesystem outside the store, none shadows a catalog table (issue 13 item 4)."""

from __future__ import annotations

import os

import pytest
from thinkforge.manifests.errors import ConfigError, NotFoundError
from thinkforge.manifests.store import RESERVED_NAMES, validate_name, validate_run_id

BAD_NAMES = ["gsm8k\n", "../x", "../../outside", "/abs/path", "a/b", "a\\b", "x@v1", "Upper", "",
             ".hidden", "..", "-dash", "a b", "a\x00b", "n" * 129, *sorted(RESERVED_NAMES)]
BAD_RUN_IDS = ["/abs/path", "../../x", "..", ".", "a/b", "x\n", "", "-rm", "a\x00", "r" * 201]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused(name):
    with pytest.raises(ConfigError):
        validate_name(name)


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_bad_run_ids_are_refused(run_id):
    with pytest.raises(ConfigError):
        validate_run_id(run_id)


def test_good_names_and_run_ids_pass():
    assert validate_name("gsm8k-sft_v2.1") == "gsm8k-sft_v2.1"
    assert validate_name("versions-data") == "versions-data"
    assert validate_run_id("Run-2026.12_01") == "Run-2026.12_01"


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("name", ["gsm8k\n", "../escape", "/tmp/abs-escape", "a/b", "versions", "runs"])
def test_import_refuses_a_bad_name_before_any_work(cli_run, store, data_dir, tmp_path, name):
    before = tree(tmp_path)
    result = cli_run("import", str(data_dir / "math500_demo.jsonl"), "--name", name, "--preset", "math500")
    assert result.exit_code == 8, result.output
    assert "Traceback" not in result.output
    assert tree(tmp_path) == before  # no store, no staging, nothing outside


@pytest.mark.parametrize("args", [
    ("generate", "sft", "--prompts", "p", "--name", "../../x"),
    ("generate", "sft", "--prompts", "p", "--name", "ok", "--run-id", "/abs/run"),
    ("generate", "sft", "--prompts", "p", "--name", "ok", "--run-id", "../../x"),
    ("generate", "rollouts", "--prompts", "p", "--name", "ok", "--run-id", "a/../../b"),
    ("filter", "quality", "p", "--name", "../q"),
    ("filter", "dedup", "p", "--name", "lineage"),
])
def test_generate_and_filter_refuse_bad_names_and_run_ids(cli_run, store, tmp_path, args):
    before = tree(tmp_path)
    result = cli_run(*args)
    assert result.exit_code == 8, result.output
    assert tree(tmp_path) == before


def test_run_checkpoint_refuses_a_path_as_run_id(tmp_path):
    from thinkforge.generators.runs import RunCheckpoint

    for run_id in ("/abs", "../x"):
        with pytest.raises(ConfigError):
            RunCheckpoint(tmp_path / "runs", run_id, {})
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


def test_a_reference_with_a_trailing_newline_is_not_found(store, data_dir):
    from thinkforge.curation.importer import ImportOptions, import_file

    import_file(store, data_dir / "math500_demo.jsonl", ImportOptions(name="math500", preset="math500"))
    for ref in ("math500\n", "math500@v1\n", "../math500"):
        with pytest.raises(NotFoundError):
            store.resolve(ref)
    os.makedirs(store.datasets_dir / "Bad\n" / "v1")  # a stray directory is never a dataset
    assert store.names() == ["math500"]


def test_a_dataset_named_like_a_catalog_table_cannot_be_published(store):
    with pytest.raises(ConfigError, match="reserved"):
        store.writer("versions", "prompts", step={"type": "t"})
