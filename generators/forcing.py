"""Answer forcing for the prompted ON format (s1's "budget forcing", docs/generation.md).

A small prompted teacher often reasons correctly and then stops without the ``Final
answer:`` line it was asked for (SmolLM2-135M on the demo: ~60% of ON replies); the
prompted format has no answer to store then, and the row is rejected.  With
``answer_forcing`` set, such a reply gets the marker appended and the teacher continues
it: a second generate round over just those requests, the partial reply sent as a
prefill the model continues (``ChatRequest.prefill``), greedy, ``tokens`` tokens at most.
The first line it writes is the answer; the joined reply is what the checkpoint stores,
with ``finish_reason`` ``forced`` (or ``forced_after_length`` for a reply that was cut at
``max_new_tokens``, only with ``after_length``) and the tokens of both rounds.

Forcing runs inside the batch, before the batch is checkpointed, so a killed run resumes
exactly as before: a key in the checkpoint is final, forced or not.  A forcing round that
fails (a server that cannot continue a reply) keeps the unforced reply, which the step
rejects as before, and says so once on stderr.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, replace

from .backends import ChatRequest, Completion, Sampling
from .reasoning import FINAL_ANSWER_RE

MARKER = "Final answer:"
FORCED = "forced"                            # the reply stopped without an answer line
FORCED_AFTER_LENGTH = "forced_after_length"  # it was cut at max_new_tokens (truncated)


@dataclass(frozen=True)
class Forcing:
    """A plan's forcing settings, as plain values (plans travel to Dask workers)."""

    tokens: int
    after_length: bool = False


def forcing_for(config, mode: str) -> Forcing | None:
    """The forcing of ``mode``'s requests under a generation config: ON, prompted, set."""
    settings = getattr(config, "answer_forcing", None)
    if settings is None or mode != "on" or config.reasoning_format != "prompted":
        return None
    return Forcing(settings.tokens, settings.after_length)


def unanswered(text: str) -> bool:
    """No answer after a ``Final answer:`` line (no marker, or nothing after the last)."""
    markers = list(FINAL_ANSWER_RE.finditer(text))
    return not markers or not text[markers[-1].end():].strip()


def forced_prefix(text: str) -> str:
    """The reply up to where the answer goes: its own trailing marker, or the marker added."""
    markers = list(FINAL_ANSWER_RE.finditer(text))
    if markers and not text[markers[-1].end():].strip():
        return text[:markers[-1].end()].rstrip()
    return f"{text.rstrip()}\n{MARKER}"


def wants_forcing(forcing: Forcing | None, completion: Completion) -> bool:
    if forcing is None or not completion.ok or not unanswered(completion.text):
        return False
    return completion.finish_reason == "stop" or (
        forcing.after_length and completion.finish_reason == "length")


def force_answers(backend, plans: list, completions: list[Completion],
                  counts: Counter | None = None) -> list[Completion]:
    """``completions`` of ``plans`` (same order) with every reply that wants forcing
    continued after its ``Final answer:`` marker; ``counts`` gets forced / failed."""
    todo = [i for i, (plan, c) in enumerate(zip(plans, completions, strict=True))
            if wants_forcing(getattr(plan, "forcing", None), c)]
    if not todo:
        return completions
    requests = [ChatRequest(
        plans[i].key, plans[i].messages,
        Sampling(0.0, 1.0, plans[i].forcing.tokens, plans[i].sampling.seed),  # greedy
        plans[i].mode, prefill=forced_prefix(completions[i].text)) for i in todo]
    answers = backend.generate(requests)
    out = list(completions)
    for i, request, answer in zip(todo, requests, answers, strict=True):
        if not answer.ok:  # the unforced reply stays (rejected as before)
            if counts is not None and not counts.get(f"failed:{answer.error_kind}"):
                print(f"answer forcing: the teacher did not continue a reply "
                      f"({answer.error_kind}: {' '.join(str(answer.error).split())[:200]}); "
                      "those replies stay unforced", file=sys.stderr)
            if counts is not None:
                counts[f"failed:{answer.error_kind}"] += 1
            continue
        out[i] = joined(completions[i], request.prefill, answer)
        if counts is not None:
            counts["forced"] += 1
    return out


def joined(reply: Completion, prefix: str, answer: Completion) -> Completion:
    """One completion of the reply, its marker and the first line of the forced answer;
    tokens of both rounds (what the teacher was asked and wrote), attempts summed."""
    lines = [line.strip() for line in answer.text.strip().splitlines()]
    first = next((line for line in lines if line), "")
    return replace(reply, text=f"{prefix} {first}".rstrip(),
                   prompt_tokens=reply.prompt_tokens + answer.prompt_tokens,
                   completion_tokens=reply.completion_tokens + answer.completion_tokens,
                   finish_reason=FORCED if reply.finish_reason == "stop" else FORCED_AFTER_LENGTH,
                   attempts=reply.attempts + answer.attempts)
