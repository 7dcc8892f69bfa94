"""Reasoning ON/OFF conventions: system prompts, think tags, the prompted format, answers.

Llama-Nemotron switches reasoning with the system prompt ``detailed thinking on|off``.
An ON answer is ``<think>reasoning</think>`` followed by the answer; an OFF answer has no
think tags.  A *native* teacher writes the tags itself.  A *prompted* (non-reasoning)
teacher is asked, in the user turn, for step-by-step reasoning and then a line starting
with ``Final answer:``; the reply is stored as ``<think>\\nreasoning\\n</think>\\n\\nanswer``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from thinkforge.manifests.schemas import SYSTEM_PROMPTS

PROMPTED_ON_INSTRUCTION = (
    "\n\nThink step by step and write out your reasoning. Then finish with one line that "
    "starts with \"Final answer:\" followed by the answer.")
FINAL_ANSWER_RE = re.compile(r"^\s*\**\s*final answer\s*\**\s*[:：]\s*", re.IGNORECASE | re.MULTILINE)
THINK_BLOCK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
BOXED_RE = re.compile(r"\\boxed\s*\{")
NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# what the prompted format stores: one think block, then the answer (shape_reply)
STORED_PROMPTED_RE = re.compile(r"<think>((?:(?!</?think>).)*)</think>((?:(?!</?think>).)*)",
                                re.DOTALL)


@dataclass
class ShapedOutput:
    output: str          # what is stored: ON -> <think>...</think> + answer; OFF -> answer
    answer_text: str     # the part after the reasoning (what verifiers read)
    format_ok: bool      # tags (native) or the requested structure (prompted) were followed
    declared: bool = False  # answer_text is what followed a "Final answer:" line (prompted)
    unclosed: bool = False  # ON reasoning that never reached </think> (truncated)


def teacher_messages(messages: list[dict], mode: str, reasoning_format: str,
                     instructions=None) -> list[dict]:
    """The conversation sent to the teacher: the mode's system prompt first, then the prompt
    with the mode's instruction appended (``instructions``: a step config's
    ``PromptInstructions`` or a ``{mode: text}`` dict; unset modes keep the defaults).
    Generation and GRPO's prompts both come from here."""
    return apply_prompt_template(messages, prompt_template([mode], reasoning_format,
                                                           instructions), mode)


# What an *instruction* to mark the answer looks like.  A prompt may quote a worked solution
# ("... \\boxed{3.3e-10} ... Final answer: 12"): those markers carry an answer and are not
# instructions, so they never switch a request to "marker required".  The boxed patterns
# are RE2-compatible: ``filter quality`` runs the same text in DuckDB (boxed_missing).
BOXED_INSTRUCTION = (
    r"(?i)\\boxed\s*\{\s*\}"
    r"|\\boxed\s*\{\s*(?:answer|your answer|final answer|the answer|ans|\.\.\.|x)\s*\}"
    r"|\b(?:put|place|write|enclose|wrap|present|give|provide|mark|format|box|return|output|"
    r"state|display|show)\b[^\n.]{0,80}?\b(?:in|within|inside|using|with|as|into|by)\s+"
    r"(?:a\s+|the\s+)?(?:latex\s+)?\\boxed")
FINAL_ANSWER_INSTRUCTION = (
    r"(?i)\b(?:finish|end|conclude|close|terminate|complete)\b[^\n]{0,80}?final answer"
    r"|\b(?:starts?|begins?|beginning|starting|prefix(?:ed)?)\s+with\s+[\"'\u201c`]?\**"
    r"final answer"
    r"|[\"'\u201c`]\**final answer\**\s*:?[^\"'\u201d`\n]{0,24}[\"'\u201d`]"
    r"|final answer\s*:\s*(?:<[^>\n]*>|\[[^\]\n]*\]|\{[^}\n]*\}|\$?answer\b)")
FINAL_ANSWER_INSTRUCTION_RE = re.compile(FINAL_ANSWER_INSTRUCTION)
_MARKER_INSTRUCTION_RE = re.compile(f"{BOXED_INSTRUCTION}|{FINAL_ANSWER_INSTRUCTION[4:]}")


def marker_required(messages: list[dict]) -> bool:
    """Whether the request *instructs* the model to mark its answer (``\\boxed{}`` or a
    ``Final answer:`` line): then a reply without one is wrong, not read for its last
    expression.  Only instructions count, not markers inside text the prompt quotes."""
    return any(_MARKER_INSTRUCTION_RE.search(m.get("content") or "")
               for m in messages if m.get("role") in ("system", "user"))


def prompt_template(modes: list[str], reasoning_format: str, instructions=None) -> dict:
    """The template a generation step wraps every prompt in, per mode, as plain data.

    Rollouts record it in their manifest (``provenance.export.prompt_template``) so that the
    RL pool and its exports give the trainer the exact messages the pass rates were
    measured on (:func:`apply_prompt_template`), not the bare prompt.
    """
    given = instructions or {}
    if not isinstance(given, dict):  # a PromptInstructions
        given = given.model_dump()
    return {"reasoning_format": reasoning_format, "modes": {
        mode: {"system": SYSTEM_PROMPTS[mode],
               "user_suffix": _user_suffix(mode, reasoning_format, given.get(mode))}
        for mode in modes}}


def _user_suffix(mode: str, reasoning_format: str, instruction: str | None) -> str:
    if instruction is not None:  # the step's own text, one blank line after the prompt
        return f"\n\n{instruction.strip()}" if instruction.strip() else ""
    return PROMPTED_ON_INSTRUCTION if mode == "on" and reasoning_format == "prompted" else ""


def apply_prompt_template(messages: list[dict], template: dict, mode: str,
                          system: bool = True) -> list[dict]:
    """``messages`` as ``template`` sends them in ``mode``: system turn first (unless
    ``system`` is False), the mode's suffix appended to the last user turn."""
    spec = template["modes"][mode]
    sent = [{"role": "system", "content": spec["system"]}] if system else []
    sent += [{"role": m["role"], "content": m["content"]} for m in messages]
    if spec["user_suffix"]:
        last_user = max(i for i, m in enumerate(sent) if m["role"] == "user")
        sent[last_user]["content"] += spec["user_suffix"]
    return sent


def shape_output(text: str, mode: str, reasoning_format: str,
                 think_prefilled: bool | str = False) -> ShapedOutput:
    """Turn a teacher's raw reply into the stored shape of its mode.

    ON rows get one canonical form, ``<think>\\nreasoning\\n</think>\\n\\nanswer``, whatever
    the server sent (docs/teachers.md): a reply whose template pre-filled ``<think>``
    (``think_prefilled`` true, or "auto" and a ``</think>`` with no ``<think>``) gets its
    opening tag back; a reasoning that never closes is ``unclosed`` (truncated), never an
    answer.
    """
    text = text.strip()
    if mode == "off":
        # an empty think block (some reasoning teachers emit one when told "off") is dropped
        cleaned = re.sub(r"^<think>\s*</think>\s*", "", text)
        return ShapedOutput(cleaned, cleaned, format_ok="<think>" not in cleaned and
                            "</think>" not in cleaned)
    text = restore_think_open(text, think_prefilled)
    if text.startswith("<think>") and "</think>" not in text:
        # the reasoning never closed (the token budget ran out inside it): no answer here
        return ShapedOutput(text, "", False, unclosed=True)
    if reasoning_format == "native":
        blocks = THINK_BLOCK_RE.findall(text)
        ok = (len(blocks) == 1 and text.startswith("<think>") and bool(blocks[0].strip())
              and text.count("<think>") == 1 and text.count("</think>") == 1)
        answer = text.split("</think>", 1)[1].strip() if "</think>" in text else ""
        if ok:
            return ShapedOutput(canonical_on(blocks[0], answer), answer, bool(answer))
        return ShapedOutput(text, answer, False)
    return _shape_prompted(text)


def shape_reply(text: str, mode: str, reasoning_format: str) -> ShapedOutput:
    """A reply the way a reward reads it: what the generation step accepted, or what it stored.

    A model trained on our data writes what the step *stored*; a prompted teacher writes what
    the prompt asked for.  Both must score as the step scored them.  The native format and
    OFF store the reply as it came (``shape_output`` reads both).  The prompted format stores
    ``<think>reasoning</think>answer`` with its "Final answer:" marker cut off, so a reply of
    that shape whose answer part holds no marker reads as a declared answer (the step kept
    only declared answers there); anything else is read by ``shape_output`` as a reply.
    """
    if mode == "on" and reasoning_format == "prompted":
        stored = STORED_PROMPTED_RE.fullmatch(text.strip())
        if stored:
            reasoning, answer = stored.group(1).strip(), stored.group(2).strip()
            if answer and not FINAL_ANSWER_RE.search(answer):
                return ShapedOutput(f"<think>\n{reasoning}\n</think>\n\n{answer}", answer,
                                    bool(reasoning), declared=True)
    return shape_output(text, mode, reasoning_format)

def canonical_on(reasoning: str, answer: str) -> str:
    """The one stored form of an ON answer."""
    body = f"<think>\n{reasoning.strip()}\n</think>"
    return f"{body}\n\n{answer.strip()}" if answer.strip() else body


def restore_think_open(text: str, think_prefilled: bool | str) -> str:
    """Put back the ``<think>`` a pre-filling chat template kept in the prompt."""
    text = text.strip()
    if text.startswith("<think>"):
        return text
    if think_prefilled is True or (think_prefilled == "auto" and "</think>" in text
                                   and "<think>" not in text):
        return "<think>\n" + text
    return text


def join_reasoning(reasoning: str | None, content: str, finish_reason: str) -> str:
    """One reply text from a server that sends the reasoning in its own field: the canonical
    ON form, or an unclosed ``<think>`` when the budget ran out inside the reasoning (the
    server's parser then sends everything as reasoning and no content)."""
    content = (content or "").strip()
    if not reasoning or not reasoning.strip():
        return content
    if not content and finish_reason == "length":
        return f"<think>\n{reasoning.strip()}"
    return canonical_on(reasoning, content)


def wire_seen(text: str, field: str | None) -> str:
    """How an ON reply arrived, for provenance: the reasoning field's name, or inline
    (``+prefilled`` when the opening tag was missing)."""
    if field:
        return field
    stripped = text.lstrip()
    if "</think>" in stripped and not stripped.startswith("<think>"):
        return "inline+prefilled"
    return "inline" if "<think>" in stripped else "no_reasoning"


def _shape_prompted(text: str) -> ShapedOutput:
    text = text.replace("<think>", "").replace("</think>", "").strip()
    markers = list(FINAL_ANSWER_RE.finditer(text))
    if markers:
        last = markers[-1]
        reasoning, answer = text[:last.start()].strip(), text[last.end():].strip()
        ok = bool(reasoning) and bool(answer)
        return ShapedOutput(f"<think>\n{reasoning}\n</think>\n\n{answer}", answer, ok,
                            declared=bool(answer))
    if (fence := text.rfind("```", 0, text.rfind("```"))) >= 0:
        # no marker, but code: the last fenced block is the answer, the text before it reasons
        reasoning, answer = text[:fence].strip(), text[fence:].strip()
        return ShapedOutput(f"<think>\n{reasoning}\n</think>\n\n{answer}", answer, False)
    # the teacher wrote no "Final answer:" line: there is no answer to store or verify.
    # (Storing its last paragraph as the answer duplicated one-paragraph replies as
    # <think>X</think>X.)  SFT rejects the row (no_final_answer); rollouts score it 0.
    return ShapedOutput(f"<think>\n{text}\n</think>", "", False)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, with nested braces balanced."""
    starts = [m.end() for m in BOXED_RE.finditer(text)]
    if not starts:
        return None
    depth, start = 1, starts[-1]
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i].strip()
    return None
