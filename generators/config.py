"""Pydantic configs of the generation steps (the CLI only maps its flags onto these).

The whole resolved config goes into the version's ``step``, so a rerun with the same
config on the same prompts version reuses the published version instead of generating.
Secrets never enter a config: the OpenAI backend names the environment variable that
holds the API key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from .backends import backend_names
from .judge_config import JudgeConfig, JudgedStep

Mode = Literal["on", "off"]


def _yaml_mode(value):
    """YAML 1.1 reads bare on/off as booleans: take them back as the mode names."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return [_yaml_mode(v) for v in value]
    return value


def _distinct_modes(modes: list[str]) -> list[str]:
    if not modes or len(set(modes)) != len(modes):
        raise ValueError("modes must be a non-empty list of distinct values among on, off")
    return modes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingConfig(_Strict):
    temperature: float = Field(0.6, ge=0, description="0 means greedy decoding")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass")
    max_new_tokens: int = Field(512, ge=1, description="completion token budget per request")


class BackendConfig(_Strict):
    backend: str = Field(
        "transformers", description="transformers (local, embedded default), openai (any "
        "OpenAI-compatible server), vllm (offline engine), llamacpp (llama.cpp on a GGUF "
        "file, in process), or a plugin's backend",
        json_schema_extra={"registry": "thinkforge.generators.backends:backend_names"})
    model: str = Field("smollm2-135m", description="default teacher: `smollm2-135m` (embedded), "
                       "a local HF folder (llamacpp: a local .gguf file), or the served model name for openai")
    device: str = Field("auto", description="transformers: auto (CUDA when torch sees a GPU), "
                        "cpu, cuda, cuda:1 ...")
    dtype: str = Field("auto", description="auto (float32 on CPU, bfloat16 on CUDA), float32, "
                       "bfloat16, float16")
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = Field(
        "sdpa", description="transformers: attention kernel (flash_attention_2 needs CUDA, "
        "bf16 and the flash-attn package)")
    # run control (exclude=True): how the run is driven, never what it produces; recorded in
    # provenance.run_control, not in the step, so a rerun with other values resumes the same
    # run id and reuses the same version (docs/teachers.md)
    cpu_threads: int | None = Field(None, ge=1, exclude=True, description="transformers on CPU "
                                    "and llamacpp: threads (default: the cores other jobs leave idle, "
                                    "by the load average; more threads than idle cores "
                                    "oversubscribe OpenMP)")
    batch_size: int = Field(16, ge=1, exclude=True, description="requests per generate call "
                            "(transformers, vllm) and per checkpoint chunk; llamacpp: server "
                            "slots decoding at once")
    base_url: str | None = Field(None, exclude=True, description="openai: server URL, e.g. "
                                 "http://127.0.0.1:8000/v1 (CLI: repeat --base-url to add "
                                 "replicas of the same teacher to `endpoints`)")
    endpoints: list[str] = Field(default_factory=list, exclude=True, description="openai: "
                                 "more servers of the same teacher; requests are spread over "
                                 "base_url and these (with --executor dask: shared out among "
                                 "the workers), a dead one's requests go to the others")
    endpoints_file: str | None = Field(None, exclude=True, description="openai: a file of "
                                       "endpoint URLs, one per line (# comments), added to "
                                       "`endpoints`", json_schema_extra={"cli_aliases": [
                                           "--endpoints"]})
    api_key_env: str = Field("OPENAI_API_KEY", exclude=True, description="openai: environment "
                             "variable that holds the API key (a placeholder is sent when it "
                             "is unset)")
    concurrency: int = Field(8, ge=1, exclude=True, description="openai: most requests in "
                             "flight at once per endpoint (on a Dask worker: per worker and "
                             "endpoint); halved on a 429, grown back by one per window of "
                             "successes")
    max_retries: int = Field(5, ge=0, exclude=True, description="openai: retries of one "
                             "request on 429, 5xx, timeouts, connection errors and malformed "
                             "replies")
    request_timeout_s: float = Field(120.0, gt=0, exclude=True, description="openai: timeout "
                                     "of one request", json_schema_extra={"cli_aliases": [
                                         "--request-timeout"]})
    backoff_base_s: float = Field(0.5, gt=0, exclude=True, description="openai: first retry "
                                  "delay (doubles each try, with jitter; Retry-After wins "
                                  "when sent)")
    backoff_max_s: float = Field(30.0, gt=0, exclude=True, description="openai: longest delay "
                                 "between tries")
    requests_per_minute: float | None = Field(None, gt=0, exclude=True, description="openai: "
                                              "most requests sent per minute (all endpoints)")
    tokens_per_minute: float | None = Field(None, gt=0, exclude=True, description="openai: "
                                            "most tokens per minute (prompt estimate + "
                                            "max_new_tokens when sent, corrected by the "
                                            "reply's usage)")
    price_input_per_m: float | None = Field(None, ge=0, exclude=True, description="openai: "
                                            "price per 1M prompt tokens, for the cost "
                                            "estimate in the progress line and manifest")
    price_output_per_m: float | None = Field(None, ge=0, exclude=True, description="openai: "
                                             "price per 1M completion tokens")
    dead_after_failures: int = Field(20, ge=1, exclude=True, description="openai: stop the "
                                     "run (exit 10, checkpoint kept) after this many "
                                     "connection failures in a row")
    dead_after_s: float = Field(60.0, gt=0, exclude=True, description="openai: also "
                                "stop when connections fail and nothing succeeded for this "
                                "many seconds")
    # how a reasoning server returns the thinking (docs/teachers.md).  Keyed: they decide
    # what is sent and how the reply is read, so changing them asks again
    reasoning_field: Literal["auto", "reasoning", "reasoning_content", "inline"] = Field(
        "auto", description="openai: where the reasoning arrives: `reasoning` (vLLM >= 0.11 "
        "--reasoning-parser, OpenRouter), `reasoning_content` (DeepSeek API, older vLLM), "
        "`inline` (<think> in content) or auto (whichever the reply has)")
    think_prefilled: Literal["auto"] | bool = Field(
        "auto", description="the chat template pre-fills <think>, so replies start inside the "
        "reasoning (DeepSeek-R1): true, false or auto (a </think> without <think>)")
    thinking_switch: Literal["system_prompt", "chat_template_kwargs"] = Field(
        "system_prompt", description="how ON/OFF is asked: the system prompt only, or also "
        "chat_template_kwargs {<thinking_key>: true|false} per request (Qwen3, DeepSeek-V3.1)")
    thinking_key: str = Field("enable_thinking", description="the chat_template_kwargs key of "
                              "thinking_switch: enable_thinking (Qwen3) or thinking "
                              "(DeepSeek-V3.1)")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs per model")
    quantization: Literal["fp8"] | None = Field(None, description="vllm: fp8 for FP8 generation on GPUs")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="vllm: GPU memory share")
    max_model_len: int | None = Field(None, description="vllm: context length cap; "
                                          "llamacpp: context per slot (default 2048)")
    # batch inference (generators/batch.py, docs/teachers.md "Batch inference"): run
    # control like the endpoints: rows, request keys and the run id do not depend on it
    batch: bool = Field(False, exclude=True, description="openai: send the pending requests "
                        "as OpenAI Batch API jobs (/v1/files + /v1/batches), poll them and "
                        "merge the results into the run (a rerun submits only missing keys)")
    batch_file_only: bool = Field(False, exclude=True, description="openai: write the pending "
                                  "requests as Batch API JSONL into the run directory and stop "
                                  "(e.g. for vLLM's run_batch); no server is called")
    batch_results: str | None = Field(None, exclude=True, description="openai: import this "
                                      "Batch API / vLLM run_batch output file into the run "
                                      "instead of calling the teacher")
    batch_poll_s: float = Field(30.0, gt=0, exclude=True, description="openai --batch: "
                                "seconds between two status polls")
    batch_completion_window: str = Field("24h", exclude=True, description="openai --batch: "
                                         "the Batch API completion window")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        """Checked against the live registry (entry points + register_backend), not a list
        frozen at import, so a plugin's or a registered backend is accepted."""
        names = backend_names()
        if name not in names:
            import difflib

            near = difflib.get_close_matches(name, names, n=1)
            raise ValueError(f"unknown backend {name!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                             + f" (backends: {', '.join(names)})")
        return name

    def endpoint_urls(self) -> list[str]:
        """Every OpenAI-compatible endpoint of the teacher, ``base_url`` first, once each."""
        urls = [self.base_url, *self.endpoints]
        if self.endpoints_file:
            from pathlib import Path

            from thinkforge.manifests.errors import ConfigError

            path = Path(self.endpoints_file).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read the endpoints file {path}: {exc}") from None
            urls += [line.split("#", 1)[0].strip() for line in text.splitlines()]
        return list(dict.fromkeys(u.strip() for u in urls if u and u.strip()))


class TeacherRule(_Strict):
    """Route prompts of a mode and/or category to a model; the most specific rule wins."""

    mode: Mode | None = Field(None, description="on / off; empty matches both")
    category: str | None = Field(None, description="prompt category; empty matches all")
    model: str = Field(description="model for matching requests (the teacher's backend "
                       "settings, with the fields below set for this model)")
    # per-model teacher settings (None: the teacher's); every rule naming a model must agree
    base_url: str | None = Field(None, exclude=True, description="openai: this model's server")
    reasoning_field: Literal["auto", "reasoning", "reasoning_content", "inline"] | None = None
    think_prefilled: Literal["auto"] | bool | None = None
    thinking_switch: Literal["system_prompt", "chat_template_kwargs"] | None = None
    thinking_key: str | None = None
    requests_per_minute: float | None = Field(None, gt=0, exclude=True)
    tokens_per_minute: float | None = Field(None, gt=0, exclude=True)
    price_input_per_m: float | None = Field(None, ge=0, exclude=True)
    price_output_per_m: float | None = Field(None, ge=0, exclude=True)

    _mode_from_yaml = field_validator("mode", mode="before")(classmethod(lambda cls, v: _yaml_mode(v)))

    @model_serializer(mode="wrap")
    def _compact(self, handler):
        # settings left unset are not recorded: a plain {mode, model} rule dumps as before
        return {k: v for k, v in handler(self).items() if k not in TEACHER_SETTINGS or v is not None}

    def settings(self) -> dict:
        """The teacher settings this rule gives its model."""
        return {k: getattr(self, k) for k in TEACHER_SETTINGS if getattr(self, k) is not None}


TEACHER_SETTINGS = ("base_url", "reasoning_field", "think_prefilled", "thinking_switch",
                    "thinking_key", "requests_per_minute", "tokens_per_minute",
                    "price_input_per_m", "price_output_per_m")


class VerifierConfig(_Strict):
    code_timeout_s: float = Field(10.0, gt=0, description="wall-clock limit of one code test run")
    code_memory_mb: int = Field(1024, ge=64, description="address-space limit of a code test run")


class PromptInstructions(_Strict):
    """What the teacher is told after the prompt, per reasoning mode (appended to the last
    user turn).  Unset: the defaults of ``thinkforge.generators.reasoning`` (prompted ON
    asks for step-by-step reasoning and a "Final answer:" line; OFF and native add
    nothing).  The same text reaches GRPO's prompts (found through the pool's lineage)."""

    on: str | None = Field(None, description="appended to ON prompts; in the prompted format "
                           "it must ask for a line starting with \"Final answer:\"")
    off: str | None = Field(None, description="appended to OFF prompts, e.g. \"Answer with "
                            "the number only.\"")

    _on_from_yaml = model_validator(mode="before")(classmethod(
        lambda cls, v: {_yaml_mode(k): x for k, x in v.items()} if isinstance(v, dict) else v))


class AnswerForcing(_Strict):
    """Answer forcing for the prompted ON format (s1's budget forcing; docs/generation.md):
    an ON reply that ends without an answer after a ``Final answer:`` line gets the marker
    appended, and the teacher continues the reply greedily for ``tokens`` tokens; the
    first line it writes is the answer.  The row's ``finish_reason`` says it was forced."""

    tokens: int = Field(16, ge=1, le=256, description="answer forcing: token budget of the "
                        "forced answer (its first line is kept)")
    after_length: bool = Field(False, description="answer forcing: also force replies cut at "
                               "max_new_tokens (finish_reason forced_after_length; the quality "
                               "step's truncated rule still drops them)")


class GenerationConfig(JudgedStep, _Strict):
    """Settings shared by SFT generation and rollouts."""

    _recorded_when_set = ("instructions", "answer_forcing")

    teacher: BackendConfig = Field(default_factory=BackendConfig)
    teachers: list[TeacherRule] = Field(default_factory=list, description="per-mode / per-"
                                        "category teacher map (falls back to teacher.model)")
    reasoning_format: Literal["native", "prompted"] = Field(
        "prompted", description="native: the teacher writes <think> itself; prompted: a "
        "non-reasoning teacher is asked for reasoning + a final answer, stored as "
        "<think>reasoning</think> answer")
    instructions: PromptInstructions | None = Field(
        None, description="text appended to the prompt per mode (default: the prompted "
        "format's step-by-step + \"Final answer:\" instruction for ON, nothing for OFF)")
    answer_forcing: AnswerForcing | None = Field(
        None, description="prompted ON replies without a \"Final answer:\" line get the "
        "marker and the teacher writes the answer (off unless set)")
    limit: int | None = Field(None, ge=1, description="use only the first N prompts")
    seed: int = Field(0, description="base seed; each request derives its own from its key")
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="LLM judge of the "
                               "answers the verifier leaves undecided (docs/verifier.md)")
    # run control, not part of the step record (exclude=True): it changes no row, and a rerun
    # with another value must find the same run id and resume the same checkpoint
    max_error_rate: float = Field(
        0.5, ge=0, le=1, exclude=True,
        description="fail the run (publish nothing, keep the checkpoint) when more than this "
                    "share of requests still failed after their retries")

    @model_validator(mode="after")
    def _on_instruction_asks_for_the_marker(self):
        from .reasoning import FINAL_ANSWER_INSTRUCTION_RE

        on = self.instructions.on if self.instructions else None
        if on is not None and self.reasoning_format == "prompted" \
                and not FINAL_ANSWER_INSTRUCTION_RE.search(on):
            raise ValueError(
                f"instructions.on {on!r} does not ask for a line starting with \"Final "
                "answer:\"; the prompted format stores the reasoning before that line and "
                "verifies the answer after it, so every ON answer would be rejected. Add "
                "e.g. 'then a last line \"Final answer: <number>\"'")
        return self

    @model_validator(mode="after")
    def _forcing_needs_the_prompted_format(self):
        if self.answer_forcing is not None and self.reasoning_format != "prompted":
            raise ValueError("answer_forcing appends a \"Final answer:\" line, which only the "
                             "prompted format reads; a native teacher closes its own </think>. "
                             "Drop answer_forcing or use reasoning_format: prompted")
        return self

    @model_validator(mode="after")
    def _rules_agree(self):
        seen: dict[tuple[str, str], object] = {}
        for rule in self.teachers:
            for key, value in rule.settings().items():
                if seen.setdefault((rule.model, key), value) != value:
                    raise ValueError(f"teachers: the rules for {rule.model} disagree on {key} "
                                     f"({seen[(rule.model, key)]!r} vs {value!r}); give it once")
        return self

    def teacher_for(self, model: str) -> BackendConfig:
        """The backend settings of ``model``: the teacher's, with its rules' settings on top."""
        update: dict = {}
        for rule in self.teachers:
            if rule.model == model:
                update.update(rule.settings())
        if "base_url" in update:  # its own server: the default teacher's replicas are not it
            update.update(endpoints=[], endpoints_file=None)
        return self.teacher.model_copy(update=update) if update else self.teacher

    def model_for(self, mode: str, category: str) -> str:
        """The teacher of one (mode, category): mode+category > category > mode > default."""
        best, best_score = self.teacher.model, -1
        for rule in self.teachers:
            if rule.mode not in (None, mode) or rule.category not in (None, category):
                continue
            score = (2 if rule.category else 0) + (1 if rule.mode else 0)
            if score > best_score:
                best, best_score = rule.model, score
        return best


# the paper's per-mode sampling; a partial setting (only max_new_tokens, say) fills the rest
# from its own mode's defaults, so giving OFF a token budget never makes it sample
MODE_SAMPLING_DEFAULTS: dict[str, dict[str, float]] = {
    "on": {"temperature": 0.6, "top_p": 0.95},
    "off": {"temperature": 0.0, "top_p": 1.0},
}


def _merge_over_mode_defaults(mode: str):
    """A before-validator: the given sampling fields over ``mode``'s defaults, field by field."""
    def merge(cls, value):
        if isinstance(value, SamplingConfig):
            value = value.model_dump(exclude_unset=True)
        if isinstance(value, dict):
            return {**MODE_SAMPLING_DEFAULTS[mode], **value}
        return value
    return field_validator(f"sampling_{mode}", mode="before")(classmethod(merge))


class SftConfig(GenerationConfig):
    """Paired reasoning ON/OFF SFT generation (docs/generation.md)."""

    modes: list[Mode] = Field(default_factory=lambda: ["on", "off"], description="modes to generate")
    n: int = Field(1, ge=1, description="candidates per prompt and mode, for rejection "
                   "sampling with `filter correct` (a greedy mode is asked once and its answer "
                   "copied to every sample)")
    sampling_on: SamplingConfig = Field(default_factory=SamplingConfig,
                                        description="ON mode sampling (paper: 0.6 / 0.95); fields not "
                                        "given keep these defaults")
    sampling_off: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.0, top_p=1.0),
        description="OFF mode sampling (paper: greedy); fields not given keep these defaults")
    _merge_on = _merge_over_mode_defaults("on")
    _merge_off = _merge_over_mode_defaults("off")

    _modes_from_yaml = field_validator("modes", mode="before")(classmethod(lambda cls, v: _yaml_mode(v)))
    _check_modes = field_validator("modes")(classmethod(lambda cls, v: _distinct_modes(v)))

    def sampling_for(self, mode: str) -> SamplingConfig:
        return self.sampling_on if mode == "on" else self.sampling_off


class RolloutConfig(GenerationConfig):
    """K sampled completions per prompt, rewarded by accuracy and format (RL pools)."""

    modes: list[Mode] = Field(default_factory=lambda: ["on"], description="modes to roll out",
                              json_schema_extra={"cli_aliases": ["--mode"]})
    k: int = Field(8, ge=1, description="samples per prompt and mode (the paper: 8)")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig,
                                     description="sampling of every rollout")
    reward_correct: float = Field(1.0, description="reward for a correct answer")
    reward_format: float = Field(0.0, description="reward added when the format is right")

    _modes_from_yaml = field_validator("modes", mode="before")(classmethod(lambda cls, v: _yaml_mode(v)))
    _check_modes = field_validator("modes")(classmethod(lambda cls, v: _distinct_modes(v)))

    def sampling_for(self, mode: str) -> SamplingConfig:
        return self.sampling
