"""One import name: the layers keep their folders but install as `thinkforge.<layer>`."""

import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("manifests", "generators", "filters", "curation", "trainers", "console")


def test_the_installed_distribution_has_one_top_level_name():
    dist = metadata.distribution("thinkforge")
    assert dist.read_text("top_level.txt").split() == ["thinkforge"]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {"thinkforge"}
    for folder in ("thinkforge", *LAYERS):
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).parts
            on_disk.add(".".join(rel if folder == "thinkforge" else ("thinkforge", *rel)))
    assert set(config["packages"]) == on_disk
    assert {config["package-dir"][f"thinkforge.{layer}"] for layer in LAYERS} == set(LAYERS)


def test_a_built_wheel_holds_only_thinkforge(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("thinkforge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"thinkforge"}
    assert "thinkforge/curation/data/math500_demo.jsonl" in names
    assert "thinkforge/trainers/distill/decilm/modeling_decilm.py" in names
    assert "thinkforge/console/templates/pair.html" in names and "thinkforge/console/static/console.js" in names


def test_no_layer_is_importable_under_its_bare_name():
    code = f"import importlib.util as u; print([m for m in {LAYERS!r} if u.find_spec(m)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"
