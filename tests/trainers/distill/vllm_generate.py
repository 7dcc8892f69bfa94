"""Greedy generation with vLLM's offline engine; run by the vLLM environment's python.

    .venv-vllm/bin/python tests/trainers/distill/vllm_generate.py MODEL_DIR PROMPTS.json OUT.json

PROMPTS.json is ``{"prompts": [[token ids], ...], "max_tokens": N}``; OUT.json gets
``{"tokens": [[generated ids], ...], "logprobs": [[logprob of each generated id], ...]}``.
The model is loaded with ``trust_remote_code=True`` (a distilled DeciLM child goes to vLLM's
``nemotron-nas`` model), float32, eager, on CPU (VLLM_CPU_KVCACHE_SPACE etc. come from the
caller's environment).  Imports nothing from thinkforge.
"""

from __future__ import annotations

import json
import sys


def generate(model_dir: str, prompts: list[list[int]], max_tokens: int) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=model_dir, trust_remote_code=True, dtype="float32", enforce_eager=True,
              max_model_len=256, max_num_seqs=len(prompts), seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True, logprobs=1)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params)
    tokens, logprobs = [], []
    for out in outputs:
        completion = out.outputs[0]
        ids = list(completion.token_ids)
        tokens.append(ids)
        logprobs.append([float(step[t].logprob) for step, t in zip(completion.logprobs, ids, strict=True)])
    arch = llm.llm_engine.model_config.architectures
    return {"tokens": tokens, "logprobs": logprobs, "architectures": list(arch or [])}


def main(argv: list[str]) -> None:
    model_dir, prompts_file, out_file = argv
    spec = json.loads(open(prompts_file).read())
    result = generate(model_dir, spec["prompts"], spec["max_tokens"])
    with open(out_file, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":  # vLLM's CPU engine starts worker processes that re-import this
    main(sys.argv[1:])
