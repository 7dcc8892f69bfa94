"""RLOO: TRL ``RLOOTrainer`` on an ``rl_pool`` version, with GRPO's rewards and curriculum order.

The paper used RLOO for its instruction-following RL stage; everything but the trainer
class is shared with GRPO (``thinkforge.trainers.rl``).
"""

from __future__ import annotations

from . import rl
from .base import Method
from .rloo_config import RlooTrainConfig


def _trl_config():
    from trl import RLOOConfig

    return RLOOConfig


METHOD = Method("rloo", ("rl_pool",), RlooTrainConfig, _trl_config, rl.rows, rl.build("RLOOTrainer"),
                rl.trl_fields, describe="RLOO with GRPO's rewards, curriculum order",
                checks=[rl.checks])
