"""Text for calibration, KD and the held-back report split, and its token batches.

Rows of any record kind become one text each: the system prompt (``sft``), the input
messages and the answer (``output`` / ``chosen``), through the tokenizer's chat template
when it has one.  Every fifth row (by position in the version's order) is held back for the
report's KL; the rest feed channel ranking, block scoring and KD.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    msgs: list[dict[str, str]] = []
    if row.get("system_prompt"):
        msgs.append({"role": "system", "content": str(row["system_prompt"])})
    inp = row.get("input") if "input" in row else row.get("prompt")
    if isinstance(inp, str):
        try:
            inp = json.loads(inp)
        except ValueError:
            inp = [{"role": "user", "content": inp}]
    for m in inp or []:
        if isinstance(m, dict) and m.get("content") is not None:
            msgs.append({"role": str(m.get("role") or "user"), "content": str(m["content"])})
    answer = row.get("output") or row.get("chosen") or row.get("completion")
    if answer:
        msgs.append({"role": "assistant", "content": str(answer)})
    if not msgs and row.get("text"):
        msgs.append({"role": "user", "content": str(row["text"])})
    return msgs


def row_texts(rows: Iterable[dict[str, Any]], tokenizer) -> list[str]:
    out = []
    for row in rows:
        msgs = _messages(row)
        if not msgs:
            continue
        if getattr(tokenizer, "chat_template", None):
            out.append(tokenizer.apply_chat_template(msgs, tokenize=False))
        else:
            out.append("\n".join(m["content"] for m in msgs))
    return out


def split_texts(texts: list[str]) -> tuple[list[str], list[str]]:
    """(train/calibration texts, held-back texts)."""
    if len(texts) < 2:
        return texts, texts
    held = [t for i, t in enumerate(texts) if i % 5 == 4] or texts[-1:]
    rest = [t for i, t in enumerate(texts) if i % 5 != 4] or texts[:-1]
    return rest, held


def token_batches(texts: list[str], tokenizer, *, tokens: int | None, seq_len: int,
                  batch_size: int, repeat: bool = False):
    """Texts joined with EOS and cut into ``seq_len`` windows, ``batch_size`` per tensor.

    ``tokens`` caps the total (None = every token); with ``repeat`` the stream is cycled
    until ``tokens`` are reached (tiny data versions).
    """
    import torch

    stream: list[int] = []
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    for t in texts:
        stream.extend(tokenizer(t, add_special_tokens=False)["input_ids"] + [eos])
    if not stream:
        return []
    if tokens is not None and repeat:
        while len(stream) < tokens:
            stream = stream + stream
    if tokens is not None:
        stream = stream[:max(seq_len, tokens)]
    n = len(stream) // seq_len
    if n == 0:
        stream = (stream * (seq_len // len(stream) + 1))[:seq_len]
        n = 1
    ids = torch.tensor(stream[:n * seq_len]).view(n, seq_len)
    return [ids[i:i + batch_size] for i in range(0, n, batch_size)]
