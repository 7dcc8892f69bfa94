"""Config of `thinkforge train reward` (TRL ``RewardTrainer`` on ``preferences`` versions)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import TrainCommon


class RewardTrainConfig(TrainCommon):
    learning_rate: float = Field(1e-5, gt=0, description="peak learning rate")
    max_length: int | None = Field(1024, ge=16, description="tokens of prompt + completion")
    center_rewards_coefficient: float | None = Field(
        None, description="pull mean rewards towards 0 (TRL's auxiliary loss); None: off")
    reasoning: Literal["auto", "on", "off", "none"] = Field(
        "auto", description="system turn of the pairs: auto = the mode they were sampled in, "
        "on/off, or none (score with the same setting later)")
