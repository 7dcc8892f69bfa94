"""Issue 24 item 5: random appends, rewrites and deletions of publish-log lines and copies of
version directories; `verify --all --expect-head <pinned>` reports every one of them."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.integrity import PublishLog

from .conftest import ROWS, chained, publish

FIELDS = ("manifest_sha256", "fingerprint", "time", "name", "version")
mutation = st.one_of(
    st.tuples(st.just("append_duplicate"), st.integers(0, 2), st.sampled_from(FIELDS + ("",))),
    st.tuples(st.just("rewrite"), st.integers(0, 2), st.sampled_from(FIELDS), st.booleans()),
    st.tuples(st.just("delete"), st.integers(0, 2)),
    st.tuples(st.just("copy_dir"), st.integers(0, 2), st.integers(2, 5)),
)


def apply(root: Path, change: tuple) -> None:
    log = root / "publish.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    kind, index = change[0], change[1] % max(1, len(entries))
    if kind == "append_duplicate" and entries:
        entry = dict(entries[index])
        if change[2]:
            entry[change[2]] = "0" * 64 if change[2] != "version" else entry["version"]
        entries.append(entry)
        log.write_text(chained(entries))  # a careful forger keeps the chain
    elif kind == "rewrite" and entries:
        entry = entries[index]
        entry[change[2]] = entry[change[2]] + "x"
        if change[3]:
            log.write_text(chained(entries))  # the whole chain rewritten, consistently
        else:
            lines = log.read_text().splitlines()
            lines[index] = json.dumps(entry, sort_keys=True)
            log.write_text("\n".join(lines) + "\n")
    elif kind == "delete" and entries:
        del entries[index]
        log.write_text(chained(entries))
    elif kind == "copy_dir":
        dirs = sorted((root / "datasets").glob("*/v*"))
        source = dirs[index % len(dirs)]
        target = source.parent / f"v{change[2] + 10}"
        if not target.exists():
            shutil.copytree(source, target, symlinks=True)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine") / "store"
    store = DatasetStore(root)
    publish(store, "a")
    publish(store, "a", rows=ROWS.slice(0, 5))
    publish(store, "b", rows=ROWS.slice(3, 9))
    return root, PublishLog(store).head()[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(mutation, min_size=1, max_size=3))
def test_verify_reports_every_change_to_the_log_or_the_version_directories(pristine, changes, cli_run):
    from click.testing import CliRunner

    from thinkforge.cli import cli

    root, head = pristine
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "store"
        shutil.copytree(root, copy, symlinks=True)
        before = _snapshot(copy)
        for change in changes:
            apply(copy, change)
        if _snapshot(copy) == before:
            return  # the changes undid each other: nothing to report
        result = CliRunner().invoke(cli, ["--store", str(copy), "-q", "verify", "--all",
                                          "--expect-head", head])
        assert result.exit_code == 4, (changes, result.output)
        assert "Traceback" not in result.output


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".cache" not in p.parts and "catalog" not in p.name}
