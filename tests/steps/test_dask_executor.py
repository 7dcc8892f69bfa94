"""--executor dask: a step run as a task on a 2-worker distributed.LocalCluster publishes the
very version the local executor does (fingerprint and every file's bytes); a worker killed
mid-step costs nothing; an unreachable scheduler is one clear error naming its address."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from thinkforge.manifests import DatasetStore  # noqa: E402
from thinkforge.manifests.errors import ConfigError, ForgeError  # noqa: E402
from thinkforge.manifests.settings import run_settings  # noqa: E402
from thinkforge.manifests.steps import (  # noqa: E402
    RunContext,
    build_config,
    execute,
    load_steps,  # noqa: E402
)


def _files(store: DatasetStore, manifest) -> dict[str, str]:
    """role:path -> sha256 of every file a version reads (selection, digests, rejected, the
    base shards), manifest.json aside (it names the version and the time it was written)."""
    out = {}
    for role, entry, path in store.version_files(manifest):
        out[f"{role}:{entry.path}"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def _run(store, step_type, inputs, name, config, resources=None):
    desc = load_steps()[step_type]
    cfg = build_config(desc.config_model(), config)
    made = execute(RunContext(store, quiet=True, settings=resources),
                   desc, inputs, name, cfg)
    return next(iter(made.values()))


CASES = {
    "passrate": (lambda v: {"rollouts": v["rollouts"], "prompts": v["prompts"]}, {}),
    "curriculum": (lambda v: {"pool": v["rl_pool"]}, {"batch_size": 2}),
    "quality": (lambda v: {"data": v["sft"]}, {}),
    "dedup": (lambda v: {"data": v["sft"]}, {"near": False}),
    "decontam": (lambda v: {"data": v["sft"], "against": [v["prompts"]]}, {"ngram": 3}),
}


@pytest.mark.parametrize("step_type", list(CASES))
def test_dask_version_equals_local(store, versions, cluster, step_type):
    inputs, config = CASES[step_type]
    local = _run(store, step_type, inputs(versions), f"{step_type}-local", config)
    remote = _run(store, step_type, inputs(versions), f"{step_type}-dask", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address})
    assert remote.name == f"{step_type}-dask" and remote.ref != local.ref
    assert remote.fingerprint == local.fingerprint
    assert remote.rows == local.rows and remote.rejected.rows == local.rejected.rows
    assert _files(store, remote) == _files(store, local)


@pytest.mark.parametrize("step_type", ["passrate", "quality", "dedup", "decontam"])
def test_partitioned_filter_equals_local(store, versions, cluster, step_type):
    """A separable filter split into 3 partitions over the 2 workers (each runs the step's
    own SQL on its rows), merged into one version: the local bytes, fingerprint and the
    same provenance facts."""
    from thinkforge.manifests.partitions import split_keys

    inputs, config = CASES[step_type]
    desc = load_steps()[step_type]
    assert split_keys(store, step_type, inputs(versions),
                      build_config(desc.config_model(), config))
    local = _run(store, step_type, inputs(versions), f"{step_type}-l3", config)
    remote = _run(store, step_type, inputs(versions), f"{step_type}-p3", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address, "partitions": 3})
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance
    assert remote.step == local.step and remote.parents == local.parents
    assert not list((store.root / ".staging").glob("partitions-*"))


def test_global_steps_are_not_split_by_row(store, versions):
    """Near dedup and curriculum need a global phase: not one partition per row hash, but
    phases of tasks (tests/steps/test_dask_partitioned.py)."""
    from thinkforge.manifests.partitions import PHASED, split_keys

    desc = load_steps()["dedup"]
    near = build_config(desc.config_model(), {"near": True})
    assert split_keys(store, "dedup", {"data": versions["sft"]}, near) is None
    assert split_keys(store, "curriculum", {"pool": versions["rl_pool"]}, None) is None
    assert {"dedup", "curriculum"} <= set(PHASED)


def test_a_version_checked_against_itself_is_not_split(store, versions):
    """Decontaminating a version against itself (the same object in both roles): a split
    would give each partition a share of the benchmark too, so the step runs whole."""
    from thinkforge.manifests.partitions import split_keys

    desc = load_steps()["decontam"]
    config = build_config(desc.config_model(), {"ngram": 3})
    sft = versions["sft"]
    assert split_keys(store, "decontam", {"data": sft, "against": [versions["prompts"]]}, config)
    assert split_keys(store, "decontam", {"data": sft, "against": [sft]}, config) is None


def test_cli_workers_local_cluster(cli_run, store, versions):
    """`--executor dask --workers 2` starts (and closes) its own LocalCluster."""
    local = cli_run("filter", "quality", "toy-sft", "--name", "pr-l")
    assert local.exit_code == 0, local.output
    remote = cli_run("filter", "quality", "toy-sft", "--name", "pr-d",
                     "--executor", "dask", "--workers", "2")
    assert remote.exit_code == 0, remote.output
    assert store.resolve("pr-d").fingerprint == store.resolve("pr-l").fingerprint


def test_unreachable_scheduler_names_the_address(store, versions):
    with pytest.raises(ForgeError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        _run(store, "passrate", {"rollouts": versions["rollouts"], "prompts": versions["prompts"]},
             "pr", {}, {"executor": "dask", "scheduler": "tcp://127.0.0.1:9",
                        "connect_timeout": 1})


def test_unreachable_scheduler_cli_exit(cli_run, versions):
    result = cli_run("filter", "quality", "toy-sft", "--name", "q", "--executor", "dask",
                     "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    assert "tcp://127.0.0.1:9" in result.output


def test_executor_settings_checked():
    with pytest.raises(ConfigError, match="need executor: dask"):
        run_settings({"workers": 2})
    with pytest.raises(ConfigError, match="not several"):
        run_settings({"executor": "dask", "scheduler": "tcp://h:1", "workers": 2})
    with pytest.raises(ConfigError, match="memory_limt: unknown key; did you mean 'memory_limit'"):
        run_settings({"memory_limt": "1GiB"})
    settings = run_settings({"executor": "dask", "workers": 2, "threads": 1, "memory_limit": "1GiB"})
    assert settings.executor_spec().workers == 2
    assert settings.local() == {"threads": 1, "memory_limit": "1GiB"}


def test_slurm_dry_run_prints_job_script(cli_run, versions):
    pytest.importorskip("dask_jobqueue")
    result = cli_run("filter", "quality", "toy-sft", "--name", "q", "--executor", "dask",
                     "--slurm", "--slurm-cores", "8", "--slurm-memory", "32GiB",
                     "--slurm-partition", "gpu", "--slurm-account", "proj42",
                     "--slurm-walltime", "02:00:00", "--dry-run")
    assert result.exit_code == 0, result.output
    for line in ("#SBATCH -p gpu", "#SBATCH -A proj42", "#SBATCH -t 02:00:00",
                 "#SBATCH --cpus-per-task=8", "export DASK_DISTRIBUTED__WORKER__DAEMON=False"):
        assert line in result.output
    assert "would write q" in result.output


@pytest.mark.parametrize("partitions", [1, 2])
def test_worker_killed_mid_step_still_exact(store, versions, cluster, tmp_path, partitions):
    """Kill the worker process running the step (partitions=1) or one of its partitions
    (partitions=2): Dask reruns it on the other worker, the version is the local one
    (staging or partition files left by the dead worker are never read)."""
    from distributed import Client

    marker = tmp_path / "started"
    inputs = {"rollouts": versions["rollouts"], "prompts": versions["prompts"]}
    local = _run(store, "passrate", inputs, "slow-local", {})
    os.environ["TF_TEST_SLOW_MARKER"] = str(marker)
    import tests.steps.slow_step  # noqa: F401  (registers `slow_passrate` here)

    with Client(cluster.scheduler_address) as client:
        client.run(_set_env, "TF_TEST_SLOW_MARKER", str(marker))
        pids = client.run(os.getpid)
        result: dict = {}

        def go():
            result["m"] = _run(store, "slow_passrate", inputs, "slow-dask", {},
                               {"executor": "dask", "scheduler": cluster.scheduler_address,
                                "partitions": partitions})

        thread = threading.Thread(target=go)
        thread.start()
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the step never started on a worker"
        victim = int(marker.read_text())
        assert victim in pids.values()
        os.kill(victim, 9)
        thread.join(120)
    remote = result["m"]
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)


def _set_env(key, value):
    os.environ[key] = value


def test_recipe_resources_dask_builds_the_same_versions(tmp_path, cluster):
    """The toy recipe (passrate, decontam, curriculum, quality, dedup exact+near, mix,
    split) built with `resources: {executor: dask, scheduler: ...}` gives every version the
    local build gives (fingerprints, rows, rejected rows)."""
    from thinkforge.curation.recipe import load_recipe
    from thinkforge.curation.recipe_build import build_recipe

    from tests.curation.test_recipe import RECIPE, write_recipe
    from tests.curation.test_recipe import recipe_dir as make_inputs

    folder = tmp_path / "in"
    folder.mkdir()
    make_inputs.__wrapped__(folder)  # the fixture's body: writes the input files
    out = {}
    for label, resources in (("local", {}), ("dask", {"executor": "dask",
                                                      "scheduler": cluster.scheduler_address})):
        store = DatasetStore(tmp_path / label)
        recipe, steps = load_recipe(write_recipe(folder, {**RECIPE, "resources": resources},
                                                 f"{label}.yaml"))
        build_recipe(store, recipe, steps)
        names = [s.spec.name for s in steps if s.spec.name != "toy-sft"]
        names += ["toy-sft-train", "toy-sft-validation"]
        out[label] = {n: (m.fingerprint, m.rows, m.rejected.rows)
                      for n, m in ((n, store.resolve(n)) for n in names)}
    assert out["dask"] == out["local"] and len(out["local"]) == 9


def _starts_a_child_process() -> int:
    """What vLLM's engine does inside a task: start a process (refused in a daemonic one)."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=abs, args=(-1,))
    child.start()
    child.join()
    return child.exitcode


def test_workers_of_a_started_cluster_may_start_processes():
    """`--workers N` / `--slurm` start non-daemonic workers, so `--backend vllm` can run in a
    task (a daemonic worker raises 'daemonic processes are not allowed to have children')."""
    from thinkforge.manifests.executor import dask_client
    from thinkforge.manifests.settings import run_settings

    spec = run_settings({"executor": "dask", "workers": 1}).executor_spec()
    with dask_client(spec) as client:
        assert client.submit(_starts_a_child_process, pure=False).result(timeout=120) == 0
