"""DeciLM config: a Llama config plus per-layer ``block_configs`` (the Nemotron Super/Ultra schema).

Each entry is ``{"attention": {"no_op", "replace_with_linear", "n_heads_in_group"},
"ffn": {"no_op", "replace_with_linear", "ffn_mult", "intermediate_size"}}``.  ``ffn_mult``
follows the DeciLM rule used by the public checkpoints and by vLLM's ``nemotron-nas``
(``intermediate = round_up(int(2 * ffn_mult * hidden / 3), 256)``); ``intermediate_size`` is
written too and wins here, so widths that are not multiples of 256 (tiny test models) load
in transformers.  Entries allow attribute access (``block.attention.no_op``) like the
dataclasses of the original remote code, and stay plain dicts in JSON.
"""

from __future__ import annotations

from transformers import LlamaConfig


class BlockDict(dict):
    """A dict that also reads as attributes (``block.ffn.ffn_mult``); nested dicts too."""

    def __getattr__(self, key):
        try:
            value = self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc
        return BlockDict(value) if isinstance(value, dict) and not isinstance(value, BlockDict) \
            else value


def _find_multiple(n: int, k: int) -> int:
    return n if n % k == 0 else n + k - (n % k)


def ffn_mult_to_intermediate_size(ffn_mult: float, hidden_size: int) -> int:
    """The DeciLM / vLLM rule (rounded up to a multiple of 256)."""
    return _find_multiple(int(2 * ffn_mult * hidden_size / 3), 256)


def block_intermediate_size(block: dict, hidden_size: int) -> int:
    ffn = block["ffn"]
    if ffn.get("intermediate_size"):
        return int(ffn["intermediate_size"])
    return ffn_mult_to_intermediate_size(float(ffn["ffn_mult"]), hidden_size)


class DeciLMConfig(LlamaConfig):
    model_type = "nemotron-nas"

    block_configs: list | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.block_configs is None:
            self.block_configs = [{
                "attention": {"no_op": False, "replace_with_linear": False,
                              "n_heads_in_group": self.num_attention_heads
                              // self.num_key_value_heads},
                "ffn": {"no_op": False, "replace_with_linear": False,
                        "ffn_mult": 1.5 * self.intermediate_size / self.hidden_size,
                        "intermediate_size": self.intermediate_size},
            } for _ in range(self.num_hidden_layers)]
        self.block_configs = [BlockDict({k: BlockDict(v) for k, v in dict(b).items()})
                              for b in self.block_configs]
        if len(self.block_configs) != self.num_hidden_layers:
            raise ValueError(f"{len(self.block_configs)} block_configs for "
                             f"{self.num_hidden_layers} layers")


__all__ = ["DeciLMConfig"]
