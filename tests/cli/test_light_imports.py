"""`thinkforge sql` and the core packages never import the ML stack (docs/architecture.md)."""

import subprocess
import sys
import textwrap

HEAVY = ("torch", "transformers", "trl", "vllm", "datasets", "matplotlib")

PROBE = textwrap.dedent("""
    import atexit, sys
    heavy = {heavy!r}
    atexit.register(lambda: print("LOADED:" + ",".join(m for m in heavy if m in sys.modules), file=sys.stderr))
    sys.argv = ["thinkforge", "--store", sys.argv[1], "--quiet", *sys.argv[2:]]
    from thinkforge.cli import main
    main()
""").format(heavy=HEAVY)


def loaded_modules(*args: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    line = [x for x in out.stderr.splitlines() if x.startswith("LOADED:")]
    assert line, out.stderr
    return line[-1].removeprefix("LOADED:")


def test_sql_and_catalog_do_not_import_the_ml_stack(cli_run, store, data_dir):
    cli_run("import", str(data_dir / "math500_demo.jsonl"), "--name", "m", "--preset", "math500")
    assert loaded_modules(str(store.root), "sql", "SELECT count(*) FROM m") == ""
    assert loaded_modules(str(store.root), "catalog") == ""


def test_core_packages_import_without_torch():
    code = ("import sys, thinkforge.manifests, thinkforge.filters, thinkforge.curation.importer, "
            "thinkforge.manifests.catalog; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
