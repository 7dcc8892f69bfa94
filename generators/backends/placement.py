"""Where a model runs: ``--device``, ``--dtype`` and ``--attn-implementation``, resolved once.

Every model load of the project goes through ``resolve`` (the ``hf`` teacher backend,
every ``thinkforge train`` method, the distillation), so ``auto`` means the same
everywhere: CUDA when torch sees a GPU, else the CPU; bfloat16 on CUDA, float32 on the CPU
(CPU matmuls in bfloat16 are slower than in float32 without AMX, and CPU runs are the
small, exact ones). Asking for what the machine cannot do (``cuda`` without a GPU,
``flash_attention_2`` without CUDA or without the ``flash-attn`` package) is a
``ConfigError`` before any model loads, not a crash inside transformers.

The resolution is pure (``cuda`` / ``bf16_ok`` / ``flash_attn`` can be passed in), so it
is unit-tested on a CPU machine for the GPU answers too.  ``idle_cores`` is the CPU
thread count the local backends (transformers, llamacpp) default to on a shared machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from thinkforge.manifests.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "bfloat16", "float32")
ATTN_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")
# float16 is accepted where it was before (the generate backends), not advertised
_ALL_DTYPES = (*DTYPES, "float16")


@dataclass(frozen=True)
class Placement:
    device: str               # "cpu", "cuda" or "cuda:N"
    dtype: str                # "bfloat16", "float32" (or "float16")
    attn_implementation: str  # what transformers' from_pretrained gets

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def torch_device(self):
        import torch

        return torch.device(self.device)

    def model_kwargs(self) -> dict:
        """``from_pretrained`` keywords (the device is placed by the caller or the trainer)."""
        return {"dtype": self.torch_dtype(), "attn_implementation": self.attn_implementation}

    def as_dict(self) -> dict:
        return {"device": self.device, "dtype": self.dtype,
                "attn_implementation": self.attn_implementation}


def _probe() -> tuple[bool, bool]:
    """(CUDA usable, bfloat16 supported on it)."""
    try:
        import torch
    except ImportError:
        return False, False
    if not torch.cuda.is_available():
        return False, False
    return True, bool(torch.cuda.is_bf16_supported())


def _has_flash_attn() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def resolve(device: str = "auto", dtype: str = "auto", attn_implementation: str = "sdpa", *,
            cuda: bool | None = None, bf16_ok: bool | None = None,
            flash_attn: bool | None = None, option: str = "--device") -> Placement:
    """The concrete placement for the requested one; ``ConfigError`` when it cannot run here."""
    if cuda is None:
        cuda, probed_bf16 = _probe()
        bf16_ok = probed_bf16 if bf16_ok is None else bf16_ok
    bf16_ok = cuda if bf16_ok is None else bf16_ok
    device = (device or "auto").strip().lower()
    if device != "auto" and device != "cpu" and not _is_cuda_name(device):
        raise ConfigError(f"{option} {device!r} is not a device",
                          hint="use auto, cpu, cuda (or cuda:N for one GPU)")
    if _is_cuda_name(device) and not cuda:
        raise ConfigError(f"{option} {device} was asked for but torch sees no CUDA GPU here",
                          hint="use --device auto (the CPU here) or --device cpu; on a GPU "
                               "node install the CUDA build of torch")
    resolved_device = ("cuda" if cuda else "cpu") if device == "auto" else device

    dtype = (dtype or "auto").strip().lower()
    if dtype not in _ALL_DTYPES:
        raise ConfigError(f"--dtype {dtype!r} is not supported",
                          hint=f"use one of {', '.join(DTYPES)}")
    on_cuda = _is_cuda_name(resolved_device)
    if dtype == "auto":
        dtype = "bfloat16" if on_cuda and bf16_ok else "float32"
    elif dtype == "bfloat16" and on_cuda and not bf16_ok:
        raise ConfigError("--dtype bfloat16: this GPU has no bfloat16 support (pre-Ampere)",
                          hint="use --dtype float32 (or auto)")

    attn = (attn_implementation or "sdpa").strip().lower()
    if attn not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"--attn-implementation {attn!r} is not supported",
                          hint=f"use one of {', '.join(ATTN_IMPLEMENTATIONS)}")
    if attn == "flash_attention_2":
        if not on_cuda:
            raise ConfigError("--attn-implementation flash_attention_2 needs CUDA "
                              f"(the model runs on {resolved_device} here)",
                              hint="use --attn-implementation sdpa")
        if dtype == "float32":
            raise ConfigError("--attn-implementation flash_attention_2 runs in bfloat16 or "
                              "float16 only", hint="add --dtype bfloat16 (or use sdpa)")
        if not (_has_flash_attn() if flash_attn is None else flash_attn):
            raise ConfigError("--attn-implementation flash_attention_2: the flash-attn "
                              "package is not installed",
                              hint="pip install flash-attn --no-build-isolation, or use "
                                   "--attn-implementation sdpa")
    return Placement(resolved_device, dtype, attn)


def _is_cuda_name(device: str) -> bool:
    return device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())


def synchronize(device: str) -> None:
    """Wait for queued GPU work (timings on CUDA must not measure only the launch)."""
    if _is_cuda_name(device):
        import torch

        torch.cuda.synchronize(device)


def idle_cores() -> int:
    """Cores not already busy with other jobs (by the 1-minute load average), at least 1.

    OpenMP threads spin while they wait for each other; more threads than idle cores makes
    every thread wait for a descheduled sibling (measured 3.4x slower with 2 threads than 1
    on a 2-core machine running two other jobs).
    """
    cores = os.cpu_count() or 1
    try:
        # the average includes this process's own recent work (imports, earlier steps of
        # a recipe): one runnable task is taken to be us, not another job
        busy = int(max(0.0, os.getloadavg()[0] - 1.0) + 0.5)
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))
