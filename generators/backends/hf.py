"""The transformers backend: a local model, batched generate with left padding, CPU or CUDA.

``--device`` / ``--dtype`` / ``--attn-implementation`` resolve through ``placement.resolve``
(auto: CUDA + bfloat16 when a GPU is there, else CPU + float32).

The engine hands it requests that share one sampling setting (one mode, one model), so a
batch is one ``model.generate`` call.  Sampled batches are seeded from the first request's
seed, so a rerun of the same batch reproduces its text.
"""

from __future__ import annotations

from typing import Any

from thinkforge.manifests.errors import require

from .base import ChatRequest, Completion
from .model_cache import resolve_model
from .placement import idle_cores, resolve


class TransformersBackend:
    def __init__(self, config, model: str):
        self.torch = require("torch", "gen")
        transformers = require("transformers", "gen")
        path = resolve_model(model)
        transformers.utils.logging.disable_progress_bar()  # our own bar reports progress
        placement = resolve(config.device, config.dtype,
                            getattr(config, "attn_implementation", "sdpa"))
        self.device = placement.torch_device()
        if self.device.type == "cpu":
            self.torch.set_num_threads(config.cpu_threads or idle_cores())
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            path, **placement.model_kwargs())
        self.model.to(self.device).eval()
        self.stop_ids = _stop_token_ids(self.model, self.tokenizer)
        self.preferred_batch_size = config.batch_size
        self.identity: dict[str, Any] = {
            "backend": "transformers", "model": model, "path": str(path),
            "device": str(self.device), "dtype": placement.dtype,
            "attn_implementation": placement.attn_implementation,
            "cpu_threads": self.torch.get_num_threads() if self.device.type == "cpu" else None,
            "transformers": transformers.__version__, "torch": self.torch.__version__}

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        if not requests:
            return []
        torch = self.torch
        sampling = requests[0].sampling
        texts = [self._prompt_text(r) for r in requests]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens,
                                  "pad_token_id": self.tokenizer.pad_token_id,
                                  "eos_token_id": self.stop_ids}
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            torch.manual_seed(sampling.seed or 0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1]:].tolist()
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        return [self._completion(r, tokens, int(n)) for r, tokens, n in
                zip(requests, new_tokens, prompt_lengths, strict=True)]

    def _prompt_text(self, request: ChatRequest) -> str:
        if request.prefill is None:
            return self.tokenizer.apply_chat_template(request.messages, tokenize=False,
                                                      add_generation_prompt=True)
        # the partial reply as the last assistant turn, left open: the model continues it
        # (the template writes no end-of-turn after it)
        messages = [*request.messages, {"role": "assistant", "content": request.prefill}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  continue_final_message=True)

    def _completion(self, request: ChatRequest, tokens: list[int], prompt_tokens: int) -> Completion:
        stop_at = next((i for i, t in enumerate(tokens) if t in self.stop_ids), None)
        kept = tokens if stop_at is None else tokens[:stop_at]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(key=request.key, text=text.strip(), prompt_tokens=prompt_tokens,
                          completion_tokens=len(kept) + (0 if stop_at is None else 1),
                          finish_reason="length" if stop_at is None else "stop")

    def close(self) -> None:
        self.model = None


def _stop_token_ids(model, tokenizer) -> list[int]:
    """End-of-turn ids: the tokenizer's eos plus whatever the generation config lists."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return sorted(i for i in ids if i is not None)
