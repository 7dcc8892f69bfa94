"""GRPO: TRL ``GRPOTrainer`` on an ``rl_pool`` version, in curriculum order.

Everything but the trainer class is shared with RLOO (``thinkforge.trainers.rl``): prompts in
``(curriculum_batch, curriculum_position)`` order with ``shuffle_dataset=False``, batches
aligned so one optimiser step is one curriculum batch, the prompt the pass rates were
measured with, accuracy (our verifiers) + format rewards, vLLM pass-through on GPUs.
"""

from __future__ import annotations

from . import rl
from .base import Method
from .grpo_config import GrpoTrainConfig


def _trl_config():
    from trl import GRPOConfig

    return GRPOConfig


METHOD = Method("grpo", ("rl_pool",), GrpoTrainConfig, _trl_config, rl.rows, rl.build("GRPOTrainer"),
                rl.trl_fields, describe="GRPO in curriculum order", checks=[rl.checks])
