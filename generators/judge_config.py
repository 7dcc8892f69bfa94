"""The LLM judge's config and the base of the step configs that carry one.

Apart from ``config.py`` (which re-exports both) so that the filter steps that take a judge
(pass rate, correct) import only these two models, not every generation config with its
backends (~20-30 ms of each such step process's start).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator


class JudgeConfig(BaseModel):
    """The LLM judge of a generation or filter step (off unless ``mode`` says otherwise)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["off", "undecided", "all"] = Field(
        "off", description="LLM judge: undecided (ask only about rows the rule verifier left "
        "undecided; `--judge` alone), all (ask about every row with a gold, for audits; "
        "rules still win where they decided) or off",
        json_schema_extra={"cli_aliases": ["--judge"], "flag_value": "undecided"})
    base_url: str | None = Field(None, description="judge: OpenAI-compatible server URL, "
                                 "e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="judge: the served model name")
    api_key_env: str = Field("OPENAI_API_KEY", description="judge: environment variable "
                             "holding the API key (a placeholder is sent when unset)")
    max_new_tokens: int = Field(16, ge=1, description="judge: token budget of one verdict")
    # run control: changes no verdict, so it is not recorded (exclude=True)
    concurrency: int = Field(8, ge=1, exclude=True, description="judge: requests in flight")
    max_retries: int = Field(3, ge=0, exclude=True, description="judge: retries of one "
                             "request (429, 5xx, timeouts, connection errors)")
    request_timeout_s: float = Field(60.0, gt=0, exclude=True,
                                     description="judge: timeout of one request")

    @model_validator(mode="after")
    def _needs_a_server(self):
        if self.mode != "off" and not (self.base_url and self.model):
            raise ValueError("the judge needs base_url and model (--judge-base-url URL "
                             "--judge-model NAME)")
        return self

    @property
    def on(self) -> bool:
        return self.mode != "off"



class JudgedStep(BaseModel):
    """A step config with a ``judge: JudgeConfig`` field: without a judge the step's record
    (and so its reuse key) is the one it always had.  The same holds for the optional
    fields named in ``_recorded_when_set`` (left unset: not recorded)."""

    _recorded_when_set: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _judge_only_when_on(self, handler):
        data = handler(self)
        if isinstance(data, dict):
            if not self.judge.on:
                data.pop("judge", None)
            for name in self._recorded_when_set:
                if data.get(name) is None:
                    data.pop(name, None)
        return data
