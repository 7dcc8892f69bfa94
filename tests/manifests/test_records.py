"""Manifests read without pydantic (``records.py``, the query path) agree with the model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import BaseModel
from thinkforge.manifests import manifest as models
from thinkforge.manifests import records
from thinkforge.manifests.errors import InputDataError

from tests.manifests.selection_store import ROWS, fill

PAIRS = [(models.FileEntry, records.FileEntry), (models.ParentRef, records.ParentRef),
         (models.Step, records.Step), (models.Rejected, records.Rejected),
         (models.Selection, records.Selection), (models.Manifest, records.ManifestRecord)]


@pytest.mark.parametrize(("model", "record"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_the_record_has_the_models_fields(model: type[BaseModel], record):
    fields = {(f.alias or name): f.is_required() for name, f in model.model_fields.items()}
    assert {key: default is records._REQUIRED
            for key, _, default in record._FIELDS.values()} == fields
    assert set(record._FIELDS) == set(model.model_fields)  # attribute names too (schema_)


def test_every_manifest_reads_the_same_both_ways(store):
    fill(store)
    full = list(store.manifests())
    light = list(store.manifests(light=True))
    assert any(m.selection is not None for m in light)
    assert [m.to_dict() for m in light] == [m.model_dump(by_alias=True) for m in full]
    for a, b in zip(light, full, strict=True):
        assert (a.ref, a.number, a.as_parent().ref) == (b.ref, b.number, b.as_parent().ref)
        assert store.full_manifest(a) == b
        store.check_sizes(a)  # the query path's everyday check takes either


@pytest.mark.parametrize(("edit", "says"), [
    (lambda d: d.pop("fingerprint"), "'fingerprint' is missing"),
    (lambda d: d.update(extra=1), "unknown field 'extra'"),
    (lambda d: d.update(rows="three"), "manifest.rows"),
    (lambda d: d["files"][0].update(bytes=None), "manifest.files[0].bytes"),
])
def test_a_damaged_manifest_is_a_clear_error(store, edit, says):
    with store.writer("gsm8k", "prompts", step={"type": "t"}) as w:
        w.write(ROWS)
    path = store.manifest_path(w.manifest)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(InputDataError, match="cannot read manifest") as light:
        records.read_manifest(path)
    assert says in str(light.value)
    with pytest.raises(InputDataError, match="cannot read manifest"):  # the model refuses it too
        models.Manifest.load(path)


def test_records_are_read_only(store):
    with store.writer("gsm8k", "prompts", step={"type": "t"}) as w:
        w.write(ROWS)
    m = next(store.manifests(light=True))
    with pytest.raises(AttributeError):
        m.rows = 5


def test_the_query_path_imports_no_pydantic(store):
    with store.writer("gsm8k", "prompts", step={"type": "t"}) as w:
        w.write(ROWS)
    code = ("import sys; from thinkforge.cli import main; sys.argv = ['thinkforge', '--store', "
            f"{str(store.root)!r}, '-q', 'sql', 'SELECT count(*) FROM gsm8k', '--format', 'csv']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('pydantic' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines() == ["count_star()", "3"], out.stderr
    assert out.stderr.strip().splitlines()[-1] == "False"
