"""Config shared by GRPO and RLOO (online RL on ``rl_pool`` versions in curriculum order)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import TrainCommon


class OnlineRlConfig(TrainCommon):
    per_device_train_batch_size: int = Field(
        4, ge=1, description="completions per device per micro-step (TRL counts completions)")
    gradient_accumulation_steps: int | None = Field(
        None, ge=1, description="micro-steps per optimiser step (default: derived so that one "
        "optimiser step draws exactly one curriculum batch of prompts)")
    learning_rate: float = Field(1e-6, gt=0, description="peak learning rate")
    num_generations: int = Field(4, ge=2, description="completions sampled per prompt (group size)")
    max_completion_length: int = Field(256, ge=1, description="tokens per sampled completion")
    temperature: float = Field(0.6, ge=0, description="sampling temperature (the paper's ON setting)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the reference model")
    reasoning: Literal["auto", "on", "off"] = Field(
        "auto", description="system prompt of the RL prompts; auto = the mode the pool's "
        "rollouts were sampled in (the prompt the pass rates were measured with)")
    accuracy_weight: float = Field(1.0, description="weight of the verifier accuracy reward")
    format_weight: float = Field(0.2, description="weight of the think-tag format reward")
    reward_model: str | None = Field(None, description="path of a reward model trained with "
                                     "`thinkforge train reward`, added as a reward function")
    reward_model_weight: float = Field(1.0, description="weight of --reward-model's score")
    curriculum: Literal["strict", "warn", "off"] = Field(
        "strict", description="strict: batch sizes must align with the pool's curriculum "
        "batches (clear error otherwise); warn: only warn; off: no check")
    use_vllm: bool = Field(False, description="generate with vLLM (GPU nodes with vllm installed)")
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate", description="colocate: vLLM in the training processes; server: `trl vllm-serve`")
    vllm_server_host: str = Field("127.0.0.1", description="host of `trl vllm-serve` (server mode)")
    vllm_server_port: int = Field(8000, description="port of `trl vllm-serve` (server mode)")
