"""Config of `thinkforge train sft` (TRL ``SFTTrainer`` on ``sft`` versions)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import TrainCommon


class SftTrainConfig(TrainCommon):
    mode: Literal["on", "off", "both"] = Field(
        "both", description="train on reasoning ON rows, OFF rows, or both mixed as stored")
    packing: Literal["none", "bfd"] = Field(
        "none", description="bfd: pack rows into max_length sequences (best-fit decreasing)")
    max_length: int | None = Field(2048, ge=16, description="tokens per sequence (truncation)")
    completion_only_loss: bool = Field(
        True, description="loss on the assistant completion only (prompt tokens masked)")
