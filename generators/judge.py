"""An LLM judge for the answers the rule verifier leaves undecided (docs/verifier.md#judge).

The rule verifiers (``thinkforge.generators.verifiers``) decide most rows; a gold they cannot
read leaves ``correct`` / ``verified`` NULL.  With ``judge.mode: undecided`` (CLI ``--judge``)
an OpenAI-compatible model is asked about exactly those rows; ``judge.mode: all`` (``--judge
all``, for audits) asks about every row with a gold but still only fills the undecided
ones, and records how often the judge agrees with the rules where both decided.

* The prompt is fixed and versioned (``JUDGE_PROMPT_VERSION``; its sha256 goes into the
  manifest): changing any text here means a new version string, so cached and recorded
  verdicts never mix two prompts.
* The reply is parsed strictly: ``yes`` or ``no`` (any case, an optional final period);
  anything else leaves the row undecided.
* Verdicts are cached in ``<store>/.cache/judge.jsonl`` keyed by (problem, reply, gold,
  judge model, prompt version): a rerun, another step or an audit asks nothing twice.  A
  request that failed (server down after its retries) is not cached.
* Code rows are never judged: their gold is a test program, which the sandbox runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import BackendConfig
from .judge_config import JudgeConfig

JUDGE_PROMPT_VERSION = "judge-v1"
REPLY_CHARS = 4000     # the judge reads the end of the reply's answer part
PROBLEM_CHARS = 4000   # and the start of the problem
JUDGE_SYSTEM = ("You check answers. Given a problem, its reference answer and a reply, you "
                "say whether the reply's final answer is equivalent to the reference answer.")
JUDGE_USER = """Problem:
{problem}

Reference answer:
{gold}

Reply (its final part):
{reply}

Is the final answer of the reply equivalent to the reference answer (the same value, \
expression, set, choice or statement, in any notation or unit spelling)? Answer with one \
word: yes or no."""
JUDGE_PROMPT_SHA256 = hashlib.sha256(json.dumps(
    [JUDGE_PROMPT_VERSION, JUDGE_SYSTEM, JUDGE_USER, REPLY_CHARS, PROBLEM_CHARS]).encode()
).hexdigest()
VERDICT_RE = re.compile(r"\s*(yes|no)\s*\.?\s*", re.IGNORECASE)
NOT_JUDGED = ("code",)  # verifiers whose gold is not an answer to compare


@dataclass
class JudgeItem:
    """One row to judge: the problem, the reply's answer part, the gold, the rules' verdict."""

    problem: str
    reply: str
    gold: str
    rule: bool | None


def parse_verdict(text: str | None) -> bool | None:
    """``yes`` -> True, ``no`` -> False, anything else (hedges, explanations) -> None."""
    found = VERDICT_RE.fullmatch(text or "")
    return None if found is None else found.group(1).lower() == "yes"


def wants_judge(mode: str, rule: bool | None, gold: str | None, verifier: str | None) -> bool:
    """Whether the judge is asked about a row: it has a gold that is an answer, and the rules
    left it undecided (or ``all``)."""
    if mode == "off" or not (gold or "").strip() or verifier in NOT_JUDGED:
        return False
    return mode == "all" or rule is None


def answer_part(output: str) -> str:
    """What the judge reads of a stored output: the text after the reasoning."""
    return output.rsplit("</think>", 1)[-1].strip() if "</think>" in output else output.strip()


def problem_text(messages: list[dict[str, Any]] | None) -> str:
    users = [m.get("content") or "" for m in messages or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def judge_messages(item: JudgeItem) -> list[dict[str, str]]:
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": JUDGE_USER.format(
                problem=item.problem[:PROBLEM_CHARS], gold=item.gold.strip(),
                reply=item.reply[-REPLY_CHARS:])}]


class Judge:
    """Asks the judge about items (cache first) and counts what it answered."""

    def __init__(self, config: JudgeConfig, store):
        self.config = config
        self.cache = JudgeCache(Path(store.root) / ".cache" / "judge.jsonl")
        self.counts: Counter = Counter()
        self.first_error: str | None = None

    def key(self, item: JudgeItem) -> str:
        return hashlib.sha256(json.dumps(
            [item.problem, item.reply, item.gold, self.config.model, JUDGE_PROMPT_VERSION]
        ).encode()).hexdigest()

    def ask(self, items: list[JudgeItem]) -> list[bool | None]:
        """The judge's verdict on each item (None: undecided or the request failed)."""
        keys = [self.key(item) for item in items]
        cached = self.cache.load()
        todo = {k: item for k, item in zip(keys, items, strict=True) if k not in cached}
        self.counts["cache_hits"] += sum(1 for k in keys if k in cached)
        answers = self._request(todo) if todo else {}
        self.cache.append([{"key": k, "reply": text, "model": self.config.model,
                            "prompt_version": JUDGE_PROMPT_VERSION}
                           for k, text in answers.items() if text is not None])
        verdicts = []
        for key, item in zip(keys, items, strict=True):
            text = cached[key] if key in cached else answers.get(key)
            verdict = parse_verdict(text)
            verdicts.append(verdict)
            self.counts["rows_judged"] += 1
            self.counts["errors" if text is None else
                        {True: "yes", False: "no", None: "undecided"}[verdict]] += 1
            if verdict is not None and item.rule is not None:
                self.counts["both_decided"] += 1
                self.counts["agree"] += verdict == item.rule
            if verdict is not None and item.rule is None:
                self.counts["settled"] += 1
        return verdicts

    def _request(self, todo: dict[str, JudgeItem]) -> dict[str, str | None]:
        from .backends import ChatRequest, Sampling
        from .backends.openai_client import OpenAIBackend

        c = self.config
        backend = OpenAIBackend(BackendConfig(
            backend="openai", model=c.model, base_url=c.base_url, api_key_env=c.api_key_env,
            concurrency=c.concurrency, max_retries=c.max_retries,
            request_timeout_s=c.request_timeout_s,
            reasoning_field="inline"), c.model)  # the verdict is the content; a reasoning field is not
        try:
            done = backend.generate([ChatRequest(key, judge_messages(item),
                                                 Sampling(0.0, 1.0, c.max_new_tokens, 0))
                                     for key, item in todo.items()])
        finally:
            backend.close()
        self.counts["asked"] += len(done)
        out: dict[str, str | None] = {}
        for completion in done:
            out[completion.key] = completion.text if completion.ok else None
            if not completion.ok and self.first_error is None:
                self.first_error = f"{completion.error_kind}: {completion.error}"
        if done and all(text is None for text in out.values()):
            from thinkforge.manifests.errors import GenerationFailedError

            raise GenerationFailedError(
                f"the judge at {c.base_url} (model {c.model}) answered none of {len(done)} "
                f"requests; first error: {self.first_error}",
                hint="is the judge server up? check --judge-base-url and --judge-model, or "
                     "run without --judge; verdicts already given are cached")
        return out

    def facts(self) -> dict[str, Any]:
        """The manifest's ``provenance.judge``."""
        n = self.counts
        return {"mode": self.config.mode, "model": self.config.model,
                "base_url": self.config.base_url, "prompt_version": JUDGE_PROMPT_VERSION,
                "prompt_sha256": JUDGE_PROMPT_SHA256, "rows_judged": n["rows_judged"],
                "asked": n["asked"], "cache_hits": n["cache_hits"], "yes": n["yes"],
                "no": n["no"], "undecided": n["undecided"], "errors": n["errors"],
                "settled": n["settled"],
                # counts only (a partitioned step sums its partitions' facts)
                "agreement_with_rules": {"both_decided": n["both_decided"],
                                         "agree": n["agree"]}}


class JudgeCache:
    """Append-only JSON lines ``{key, reply, model, prompt_version}``; the last line of a key
    wins.  Appends hold an exclusive lock, so steps running at once share the file."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                        out[entry["key"]] = entry["reply"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash: that verdict is asked again
        except FileNotFoundError:
            pass
        return out

    def append(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(e) + "\n" for e in entries)
        with open(self.path, "a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(text)
                f.flush()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
