"""SFT: TRL ``SFTTrainer`` on an ``sft`` version, in the prompt/completion layout.

Each row becomes ``prompt = [system "detailed thinking on|off", *input]`` and ``completion
= [assistant output]`` (``thinkforge.curation.export_formats.trl_prompt_completion``, the export's own
conversion), so TRL puts the loss on the completion only with any chat template and the
reasoning switch the teacher saw stays in the prompt.  ON and OFF rows stay mixed in the
version's order (TRL shuffles them per epoch with the seed) unless ``mode`` picks one.
"""

from __future__ import annotations

from .base import Method
from .data import sft_rows
from .sft_config import SftTrainConfig


def _trl_config():
    from trl import SFTConfig

    return SFTConfig


def _fields(config: SftTrainConfig) -> dict:
    return {"max_length": config.max_length, "packing": config.packing != "none",
            **({"packing_strategy": config.packing} if config.packing != "none" else {}),
            "completion_only_loss": config.completion_only_loss}


def _rows(data, config: SftTrainConfig, store):
    return sft_rows(data, config.mode)


def _build(model_path, dataset, args, config, data, ctx):
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return SFTTrainer(model=model_path, args=args, train_dataset=dataset,
                      processing_class=tokenizer)


METHOD = Method("sft", ("sft",), SftTrainConfig, _trl_config, _rows, _build, _fields,
                describe="supervised fine-tuning on paired reasoning ON/OFF answers")
