"""A test-only step: passrate that, on its first attempt, says which process runs it (in the
file $TF_TEST_SLOW_MARKER) and then waits long enough to be killed."""

from __future__ import annotations

import os
import time

from thinkforge.filters.passrate import PassRateConfig
from thinkforge.manifests.partitions import SPLITS
from thinkforge.manifests.steps import Role, StepDescriptor, register_step


def run_slow_passrate(ctx, inputs, name, config):
    from thinkforge.manifests.steps import load_steps

    marker = os.environ.get("TF_TEST_SLOW_MARKER")
    if marker and not os.path.exists(marker):
        with open(marker + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        time.sleep(30)  # killed here
    return load_steps()["passrate"].run_fn()(ctx, inputs, name, config)


register_step(StepDescriptor(
    type="slow_passrate", record_type="filter.passrate",
    roles=(Role("rollouts", ("rollouts",)), Role("prompts", ("prompts",), flag=True)),
    config=PassRateConfig, run=run_slow_passrate, resources=True))

# partitioned like passrate (by prompt id) on Dask with partitions > 1
SPLITS["slow_passrate"] = SPLITS["passrate"]


# curriculum in phases whose first *place* task says which process runs it and waits to be
# killed (tests/steps/test_dask_partitioned.py)
def slow_place(*args):
    from thinkforge.filters.partitioned_curriculum import curriculum_place

    marker = os.environ.get("TF_TEST_SLOW_MARKER")
    if marker and not os.path.exists(marker):
        with open(marker + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        time.sleep(30)  # killed here
    return curriculum_place(*args)


def _slow_curriculum_phased(ph):
    from thinkforge.filters.partitioned_curriculum import run_curriculum_phased

    return run_curriculum_phased(ph, place=slow_place)


def _run_curriculum(ctx, inputs, name, config):
    from thinkforge.manifests.steps import load_steps

    return load_steps()["curriculum"].run_fn()(ctx, inputs, name, config)


def _register_slow_curriculum():
    from thinkforge.filters.curriculum import CurriculumConfig
    from thinkforge.manifests.partitions import PHASED

    register_step(StepDescriptor(
        type="slow_curriculum", record_type="filter.curriculum",
        roles=(Role("pool", ("rl_pool",)),), config=CurriculumConfig, run=_run_curriculum,
        resources=True))
    PHASED["slow_curriculum"] = _slow_curriculum_phased


_register_slow_curriculum()
