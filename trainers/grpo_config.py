"""Config of `thinkforge train grpo` (TRL ``GRPOTrainer`` on ``rl_pool`` versions)."""

from __future__ import annotations

from .rl_config import OnlineRlConfig


class GrpoTrainConfig(OnlineRlConfig):
    """GRPO: group-relative advantages; every field of OnlineRlConfig applies."""
