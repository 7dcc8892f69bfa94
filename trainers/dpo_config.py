"""Config of `thinkforge train dpo` (TRL ``DPOTrainer`` on ``preferences`` versions)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import TrainCommon


class DpoTrainConfig(TrainCommon):
    beta: float = Field(0.1, gt=0, description="DPO temperature (strength of the KL to the reference)")
    loss_type: str = Field("sigmoid", description="TRL DPO loss: sigmoid, ipo, hinge, ...")
    max_length: int | None = Field(1024, ge=16, description="tokens of prompt + completion")
    reasoning: Literal["auto", "on", "off", "none"] = Field(
        "auto", description="system turn of the pairs: auto = the mode they were sampled in "
        "(recorded by `generate preferences`), on/off, or none")
