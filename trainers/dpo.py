"""DPO: TRL ``DPOTrainer`` on a ``preferences`` version (conversational prompt / chosen /
rejected, the export's ``trl-dpo`` conversion), the reasoning-mode system turn kept."""

from __future__ import annotations

from .base import Method
from .data import preference_mode, preference_rows
from .dpo_config import DpoTrainConfig


def _trl_config():
    from trl import DPOConfig

    return DPOConfig


def _fields(config: DpoTrainConfig) -> dict:
    return {"beta": config.beta, "loss_type": [config.loss_type], "max_length": config.max_length}


def _rows(data, config: DpoTrainConfig, store):
    return preference_rows(data, preference_mode(data, config.reasoning))


def _build(model_path, dataset, args, config, data, ctx):
    from transformers import AutoTokenizer
    from trl import DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ctx["extra"]["reasoning"] = preference_mode(data, config.reasoning)
    return DPOTrainer(model=model_path, args=args, train_dataset=dataset,
                      processing_class=tokenizer)


METHOD = Method("dpo", ("preferences",), DpoTrainConfig, _trl_config, _rows, _build, _fields,
                describe="direct preference optimisation on best-vs-worst pairs")
