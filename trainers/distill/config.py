"""``thinkforge train distill`` settings (every field is also a CLI option)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from thinkforge.manifests.errors import ConfigError

BUDGET_KEYS = ("params", "kv", "time", "throughput")
# defaults sized so the README example (SmolLM2-135M, params=0.6) finishes in < 5 minutes
# on 2 CPU cores: bench/README.md has the time per phase and docs/distillation.md the why
SCORE_TOKENS, SCORE_STRIDE, KD_STEPS = 128, 4, 20


def parse_budgets(items: list[str] | tuple[str, ...]) -> dict[str, float]:
    """``["params=0.6", "kv=0.5"]`` -> ``{"params": 0.6, "kv": 0.5}`` with clear errors."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in BUDGET_KEYS:
            raise ConfigError(f"bad --budget {item!r}",
                              hint="use params=0.6, kv=0.5, time=0.7 or throughput=1.5")
        try:
            out[key] = float(value)
        except ValueError:
            raise ConfigError(f"bad --budget {item!r}: {value!r} is not a number") from None
        if out[key] <= 0:
            raise ConfigError(f"bad --budget {item!r}: must be > 0")
    return out


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budgets: dict[str, float] = Field(
        default_factory=lambda: {"params": 0.6},
        description="params / kv / time: a fraction of the parent's (<= 1) or an absolute "
                    "count (> 1: parameters, KV bytes per token); throughput: minimum speed-up "
                    "of the summed block time (1.5 = 1.5x faster blocks)")
    ffn_fusion: bool = Field(False, description="fuse runs of attention-free blocks")
    calibration_tokens: int = Field(1024, ge=16, description="tokens for channel ranking "
                                    "and block scoring (and as many held back for the report)")
    seq_len: int = Field(128, ge=8, description="tokens per calibration / KD sequence")
    batch_size: int = Field(4, ge=1, description="sequences per forward pass / KD step")
    kd_steps: int = Field(KD_STEPS, ge=0, description="knowledge-distillation optimizer steps")
    kd_minutes: float | None = Field(
        None, gt=0, description="stop KD after this many minutes of wall time even if fewer "
        "than --kd-steps steps ran (the report records the steps done)")
    kd_lr: float = Field(1e-4, gt=0, description="AdamW learning rate of the KD steps")
    kd_temperature: float = Field(1.0, gt=0, description="softmax temperature of the logits KL")
    kd_cosine_weight: float = Field(0.0, ge=0, lt=1, description="weight of 1 - cos on the "
                                    "final hidden states (0 = logits KL only)")
    kd_train_embeddings: bool = Field(False, description="also train the embeddings / LM head "
                                      "(frozen by default: they are the parent's)")
    uniform_kd: bool = Field(False, description="also give the uniform-pruning baseline the "
                             "same KD steps (its KL after KD goes in the report)")
    solver: Literal["modelopt", "scipy"] = Field(
        "modelopt", description="exact search: modelopt run_mip (PuLP CBC) or scipy milp (HiGHS)")
    ffn_align: int | None = Field(None, description="FFN widths rounded to this multiple "
                                  "(default: 256 when the parent's width allows, see blocks.py)")
    attention_removal: bool = Field(True, description="allow removing attention (no-op)")
    kv_reduction: bool = Field(True, description="allow fewer KV heads (pooled groups)")
    ffn_removal: bool = Field(True, description="allow removing the FFN (no-op)")
    kv_dtype_bytes: int = Field(2, description="bytes per cached K/V element (bf16 = 2)")
    seed: int = Field(0, description="torch seed")
    score_tokens: int | None = Field(
        SCORE_TOKENS, ge=8, description="at most this many calibration tokens scored per block "
        "variant (None: every calibration token)")
    score_tolerance: float = Field(
        0.1, ge=0, description="stop scoring a variant once the standard error of its KL is "
        "within this fraction of it (sequences are added one at a time after the first 2; "
        "0: score them all)")
    score_stride: int = Field(
        SCORE_STRIDE, ge=1, description="KL on every n-th position only when scoring blocks "
        "(the remaining layers still run on every position; the LM head and softmax, about "
        "half the work per variant, on 1/n of them)")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: the CPUs "
                                "this process may use, unless OMP_NUM_THREADS is set)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the parent, the scoring and KD run: auto = CUDA when torch "
        "sees a GPU")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="parent dtype and KD autocast: auto = bfloat16 on CUDA, float32 on "
        "CPU (the child keeps float32 weights)")
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = Field(
        "sdpa", description="attention kernel of the parent and the child")

    @field_validator("budgets")
    @classmethod
    def _known(cls, v):
        bad = [k for k in v if k not in BUDGET_KEYS]
        if bad:
            raise ValueError(f"unknown budget(s) {bad}; use {', '.join(BUDGET_KEYS)}")
        if "time" in v and "throughput" in v:
            raise ValueError("give time or throughput, not both")
        return v
