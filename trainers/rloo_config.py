"""Config of `thinkforge train rloo` (TRL ``RLOOTrainer``: the paper's choice for the
instruction-following stage; the same rewards and curriculum order as GRPO)."""

from __future__ import annotations

from .rl_config import OnlineRlConfig


class RlooTrainConfig(OnlineRlConfig):
    """RLOO: leave-one-out baseline; every field of OnlineRlConfig applies."""
