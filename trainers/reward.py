"""Reward model: TRL ``RewardTrainer`` (a sequence-classification head, one score) on a
``preferences`` version.

The saved folder is an ``AutoModelForSequenceClassification`` with its tokenizer: it works
as ``thinkforge generate preferences --scorer reward-model:PATH``
(``thinkforge.generators.preferences.score_conversations``) and as a
GRPO/RLOO reward function (``--reward-model PATH``; TRL loads it as a reward model).
"""

from __future__ import annotations

from .base import Method, placement
from .data import preference_mode, preference_rows
from .reward_config import RewardTrainConfig


def _trl_config():
    from trl import RewardConfig

    return RewardConfig


def _fields(config: RewardTrainConfig) -> dict:
    out = {"max_length": config.max_length}
    if config.center_rewards_coefficient is not None:
        out["center_rewards_coefficient"] = config.center_rewards_coefficient
    return out


def _rows(data, config: RewardTrainConfig, store):
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
            for r in preference_rows(data, preference_mode(data, config.reasoning))]


def _build(model_path, dataset, args, config, data, ctx):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=1, **placement(config).model_kwargs())  # explicit dtype + kernel
    model.config.pad_token_id = tokenizer.pad_token_id
    ctx["extra"]["reasoning"] = preference_mode(data, config.reasoning)
    return RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


METHOD = Method("reward", ("preferences",), RewardTrainConfig, _trl_config, _rows, _build,
                _fields, describe="a reward model (sequence classification) on preference pairs")

