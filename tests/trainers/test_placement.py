"""--device / --dtype / --attn-implementation: one resolution (generators/backends/placement.py)
for the hf teacher, every `train` method and distillation; what this CPU machine cannot do is
a clear error before any model loads."""

from __future__ import annotations

import json

import pytest
from thinkforge.generators.backends.placement import resolve
from thinkforge.manifests.errors import ConfigError
from thinkforge.manifests.training_runs import TrainingRuns


def test_auto_here_is_cpu_float32_sdpa():
    import torch

    where = resolve()
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert where.device == expected
    assert where.dtype == ("bfloat16" if expected == "cuda" else "float32")
    assert where.attn_implementation == "sdpa"


def test_gpu_answers_resolve_without_a_gpu():
    assert resolve(cuda=True, bf16_ok=True).as_dict() == {
        "device": "cuda", "dtype": "bfloat16", "attn_implementation": "sdpa"}
    assert resolve(cuda=True, bf16_ok=False).dtype == "float32"    # pre-Ampere: no bf16
    assert resolve("cuda:1", cuda=True, bf16_ok=True).device == "cuda:1"
    flash = resolve("auto", "auto", "flash_attention_2", cuda=True, bf16_ok=True, flash_attn=True)
    assert flash.attn_implementation == "flash_attention_2" and flash.dtype == "bfloat16"
    assert resolve("cpu", "bfloat16", "eager", cuda=True).as_dict() == {
        "device": "cpu", "dtype": "bfloat16", "attn_implementation": "eager"}


@pytest.mark.parametrize("kwargs, words", [
    ({"device": "cuda", "cuda": False}, "no CUDA GPU"),
    ({"device": "cuda:0", "cuda": False}, "no CUDA GPU"),
    ({"device": "tpu", "cuda": False}, "not a device"),
    ({"dtype": "int8", "cuda": False}, "not supported"),
    ({"dtype": "bfloat16", "cuda": True, "bf16_ok": False}, "no bfloat16 support"),
    ({"attn_implementation": "flash", "cuda": True}, "not supported"),
    ({"attn_implementation": "flash_attention_2", "cuda": False}, "needs CUDA"),
    ({"attn_implementation": "flash_attention_2", "dtype": "float32", "cuda": True,
      "flash_attn": True}, "bfloat16 or float16 only"),
    ({"attn_implementation": "flash_attention_2", "cuda": True, "bf16_ok": True,
      "flash_attn": False}, "flash-attn package is not installed"),
])
def test_what_cannot_run_is_a_config_error(kwargs, words):
    with pytest.raises(ConfigError, match=words) as info:
        resolve(**kwargs)
    assert info.value.hint and info.value.exit_code == 8


def test_every_train_method_and_distill_take_the_three_options(cli_run):
    from thinkforge.trainers.registry import methods

    for method in (*methods(), "distill"):
        shown = cli_run("train", method, "--help")
        assert shown.exit_code == 0, shown.output
        for option in ("--device", "--dtype", "--attn-implementation"):
            assert option in shown.output, (method, option)
    assert "--attn-implementation" in cli_run("generate", "sft", "--help").output


def test_cuda_requested_without_cuda_stops_before_training(store, sft_version, tiny_model,
                                                           tmp_path, cli_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    result = cli_run("train", "sft", "--data", sft_version.ref, "--model", str(tiny_model),
                     "--output", str(out), "--max-steps", "1", "--device", "cuda")
    assert result.exit_code == 8
    assert "--device cuda was asked for but torch sees no CUDA GPU" in result.output
    assert not out.exists() and list(TrainingRuns(store)) == []


def test_sft_in_bfloat16_loads_trains_and_records_the_placement(store, sft_version, tiny_model,
                                                                tmp_path, cli_run):
    from safetensors.torch import load_file

    out = tmp_path / "out"
    result = cli_run("train", "sft", "--data", sft_version.ref, "--model", str(tiny_model),
                     "--output", str(out), "--max-steps", "1", "--max-length", "64",
                     "--device", "cpu", "--dtype", "bfloat16", "--attn-implementation", "eager",
                     "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["extra"]["placement"] == {"device": "cpu", "dtype": "bfloat16",
                                            "attn_implementation": "eager"}
    assert record["extra"]["trl_config"]["bf16"] is True
    assert record["extra"]["trl_config"]["use_cpu"] is True
    weights = load_file(str(next(out.glob("*.safetensors"))))
    assert {str(t.dtype) for t in weights.values()} == {"torch.bfloat16"}


def test_hf_backend_and_reward_model_load_with_the_resolved_dtype(tiny_model):
    import torch
    from thinkforge.generators.backends.hf import TransformersBackend
    from thinkforge.generators.config import BackendConfig
    from thinkforge.generators.preferences import load_reward_model

    backend = TransformersBackend(BackendConfig(dtype="bfloat16", attn_implementation="eager"),
                                  str(tiny_model))
    assert backend.model.dtype == torch.bfloat16
    assert backend.identity["dtype"] == "bfloat16"
    assert backend.model.config._attn_implementation == "eager"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            TransformersBackend(BackendConfig(device="cuda"), str(tiny_model))
    model, _ = load_reward_model(str(tiny_model))
    assert model.dtype == torch.float32 and model.device.type == resolve().device
    model, _ = load_reward_model(str(tiny_model), dtype="bfloat16")
    assert model.dtype == torch.bfloat16
