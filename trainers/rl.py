"""What GRPO and RLOO share: curriculum-ordered prompts, batch alignment, rewards, vLLM.

**Curriculum order.**  Rows are read in ``(curriculum_batch, curriculum_position)`` order
and TRL's sampler is told not to shuffle (``shuffle_dataset=False``).  TRL draws
``per_device_train_batch_size x gradient_accumulation_steps x world_size /
num_generations`` prompts per optimiser step; that number must equal the pool's
curriculum batch size so each optimiser step trains on exactly one curriculum batch.  When
``gradient_accumulation_steps`` is not given it is derived; otherwise a mismatch is a
``ConfigError`` that says which value to change (``curriculum: warn`` only warns).

**Prompts.**  The prompt is the one the pass rates were measured with: the system turn of
the rollouts' reasoning mode and the same instruction appended to the prompt (the default
step-by-step one of a prompted-format teacher, or the rollouts step's ``instructions``),
built by the one function generation uses (``thinkforge.generators.reasoning.teacher_messages``)
from the settings found through the pool's lineage.

**Rewards.**  ``thinkforge.trainers.rewards``: accuracy through ``thinkforge.generators.verifiers`` and the
think-tag format, weighted by ``accuracy_weight`` / ``format_weight``; optionally a reward
model trained with ``thinkforge train reward``.

**vLLM.**  ``use_vllm`` passes ``vllm_mode`` (colocate | server) and the server address to
TRL; on a machine without CUDA or without vllm it is refused before anything loads.
"""

from __future__ import annotations

import logging
from typing import Any

from thinkforge.manifests.errors import ConfigError, ForgeError, MissingDependencyError

from .data import TrainingData, read_rows, rollout_prompt_settings
from .rl_config import OnlineRlConfig

LOG = logging.getLogger(__name__)


def curriculum_batch_size(data: TrainingData, store) -> int | None:
    """The pool's curriculum batch size: the curriculum step's config through lineage, else
    the largest batch in the rows' ``curriculum_batch`` counts."""
    frontier, seen = [data.manifest], set()
    for _ in range(12):
        parents = []
        for m in frontier:
            if m.step.type in ("filter.curriculum", "curriculum") and m.step.config.get("batch_size"):
                return int(m.step.config["batch_size"])
            for p in m.parents:
                if p.ref not in seen:
                    seen.add(p.ref)
                    try:
                        parents.append(data.store.resolve(p.ref))
                    except ForgeError:  # not in this store (a pulled copy): lineage ends here
                        pass
        frontier = parents
        if not frontier:
            break
    counts = data.manifest.stats.get("curriculum_batch_sizes")
    if isinstance(counts, dict) and counts:
        return max(int(v) for v in counts.values())
    return None


def world_size() -> int:
    from .base import world_size as ws

    return ws()


def align_batches(data: TrainingData, config: OnlineRlConfig, store,
                  world: int | None = None) -> dict[str, Any]:
    """Derive or check gradient accumulation so one optimiser step = one curriculum batch.
    ``world``: the number of training processes (default: this launch's ``WORLD_SIZE``;
    ``thinkforge launch`` passes the cluster's, nodes x GPUs minus vLLM nodes)."""
    batch = curriculum_batch_size(data, store)
    world = world_size() if world is None else world
    facts: dict[str, Any] = {"curriculum_batch_size": batch, "world_size": world}
    if batch is None or config.curriculum == "off":
        if config.gradient_accumulation_steps is None:
            config.gradient_accumulation_steps = 1
        facts["prompts_per_step"] = (config.per_device_train_batch_size * world *
                                     config.gradient_accumulation_steps) // config.num_generations
        return facts
    per_micro = config.per_device_train_batch_size * world
    if config.gradient_accumulation_steps is None:
        need = batch * config.num_generations
        if need % per_micro == 0:
            config.gradient_accumulation_steps = need // per_micro
        else:
            _misaligned(config, batch, world, derived=True)
            config.gradient_accumulation_steps = max(1, need // per_micro)
    prompts = per_micro * config.gradient_accumulation_steps / config.num_generations
    if prompts != batch:
        _misaligned(config, batch, world, derived=False)
    facts["prompts_per_step"] = prompts
    facts["gradient_accumulation_steps"] = config.gradient_accumulation_steps
    return facts


def aligned_sizes(batch: int, generations: int, world: int, limit: int = 64) -> list[tuple[int, int]]:
    """(per-device batch size, gradient accumulation steps) pairs with which one optimiser
    step draws exactly ``batch`` prompts on ``world`` processes."""
    total = batch * generations
    return [(d, total // (d * world)) for d in range(1, limit + 1) if total % (d * world) == 0]


def alignment_hint(batch: int, generations: int, world: int) -> str:
    """What works: per-device sizes (with their accumulation), or, when none can, why and
    which group sizes, curriculum batch sizes or world sizes would."""
    from math import gcd

    sizes = aligned_sizes(batch, generations, world)
    if sizes:
        return (f"per-device batch sizes that work at world size {world}: "
                + ", ".join(f"{d} (--gradient-accumulation-steps {ga})" for d, ga in sizes[:8]))
    total = batch * generations
    gens = [g for g in _near(generations, world // gcd(batch, world)) if g >= 2]
    batches = _near(batch, world // gcd(generations, world))
    divisors = [w for w in range(1, total + 1) if total % w == 0]
    worlds = [w for w in divisors if w < world][-2:] + [w for w in divisors if w > world][:2]
    return (f"no per-device batch size works at world size {world}: {batch} prompts x "
            f"{generations} generations = {total} completions per step do not split evenly over "
            f"{world} processes; use --num-generations {' or '.join(map(str, gens))}, or a "
            f"curriculum batch_size of {', '.join(map(str, batches))}, or a world size "
            f"(training GPUs) that divides {total}: {', '.join(map(str, worlds))}")


def _near(value: int, step: int) -> list[int]:
    """Three multiples of ``step`` around ``value``."""
    low = max(step, value // step * step)
    return [low + k * step for k in range(3)]


def _misaligned(config: OnlineRlConfig, batch: int, world: int, derived: bool) -> None:
    per_micro = config.per_device_train_batch_size * world
    ga = config.gradient_accumulation_steps
    drawn = f"{config.per_device_train_batch_size} x {ga} x {world} / {config.num_generations}" \
        if ga else f"{config.per_device_train_batch_size} x ? x {world} / {config.num_generations}"
    message = (
        f"GRPO/RLOO batches do not line up with the curriculum: an optimiser step draws "
        f"per_device_train_batch_size x gradient_accumulation_steps x world_size / "
        f"num_generations = {drawn} prompts, the pool's curriculum batch size is {batch}")
    fits = (batch * config.num_generations) % per_micro == 0
    hint = (f"set --gradient-accumulation-steps so that the product is {batch} "
            + (f"(with --per-device-train-batch-size {config.per_device_train_batch_size} and "
               f"world size {world}: {batch * config.num_generations // per_micro}); "
               if fits else
               f"(impossible with --per-device-train-batch-size "
               f"{config.per_device_train_batch_size}); ")
            + alignment_hint(batch, config.num_generations, world)
            + "; or rebuild the curriculum with another batch_size, or pass --curriculum warn")
    if config.curriculum == "strict":
        raise ConfigError(message, hint=hint)
    LOG.warning(f"{message}; {hint}")


def check_vllm(config: OnlineRlConfig) -> None:
    if not config.use_vllm:
        return
    from .base import placement

    if not placement(config).on_cuda:
        raise ConfigError("--use-vllm needs CUDA GPUs; this machine has none (vLLM generation "
                          "for GRPO/RLOO runs on GPU nodes)",
                          hint="drop --use-vllm to generate with transformers on CPU, or run on "
                               "a GPU node (see `thinkforge launch --vllm-nodes 1`)")
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"--use-vllm: vllm is not installed ({exc})",
                                     hint="pip install 'thinkforge[vllm]'") from exc


def checks(data: TrainingData, config: OnlineRlConfig, store) -> None:
    check_vllm(config)
    align_batches(data, config, store)


def prompt_settings(data: TrainingData, config: OnlineRlConfig) -> dict[str, Any]:
    found = rollout_prompt_settings(data.store, data.manifest)
    mode = config.reasoning
    if mode == "auto":
        mode = (found.get("modes") or ["on"])[0]
    return {"mode": mode, "reasoning_format": found.get("reasoning_format", "native"),
            "instructions": found.get("instructions"), "rollouts": found.get("rollouts")}


def rows(data: TrainingData, config: OnlineRlConfig, store) -> list[dict]:
    """TRL prompt-only rows (the export's ``trl-grpo`` conversion) in curriculum order, with
    the prompt the pass rates were measured with and a ``reasoning`` column for the rewards."""
    from thinkforge.curation.export_formats import trl_grpo
    from thinkforge.generators.reasoning import teacher_messages

    from .data import export_context

    settings = prompt_settings(data, config)
    ctx = export_context(data, settings["mode"])
    out = []
    for i, row in enumerate(read_rows(data, curriculum_order=True)):
        converted = trl_grpo(row, i, ctx)
        converted["prompt"] = teacher_messages(row["input"], settings["mode"],
                                               settings["reasoning_format"],
                                               settings["instructions"])
        converted["reasoning"] = settings["mode"]
        out.append(converted)
    return out


def trl_fields(config: OnlineRlConfig) -> dict[str, Any]:
    weights = [config.accuracy_weight, config.format_weight] + (
        [config.reward_model_weight] if config.reward_model else [])
    fields = {"shuffle_dataset": False, "num_generations": config.num_generations,
              "max_completion_length": config.max_completion_length,
              "temperature": config.temperature, "top_p": config.top_p, "beta": config.beta,
              "reward_weights": weights, "gradient_accumulation_steps":
              config.gradient_accumulation_steps or 1}
    if config.use_vllm:
        fields.update(use_vllm=True, vllm_mode=config.vllm_mode)
        if config.vllm_mode == "server":
            fields.update(vllm_server_host=config.vllm_server_host,
                          vllm_server_port=config.vllm_server_port)
    return fields


def build(trainer_name: str):
    def _build(model_path, dataset, args, config: OnlineRlConfig, data, ctx):
        import trl
        from transformers import AutoTokenizer

        from . import rewards

        settings = prompt_settings(data, config)
        # both rewards read completions in the rollouts' reasoning format (docs/training.md)
        accuracy, format_ = rewards.reward_functions(settings["reasoning_format"])
        accuracy = _gathered_order()(accuracy)
        funcs: list[Any] = [accuracy, format_]
        if config.reward_model:
            funcs.append(config.reward_model)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        trainer = getattr(trl, trainer_name)(model=model_path, reward_funcs=funcs, args=args,
                                             train_dataset=dataset, processing_class=tokenizer)
        facts = align_batches(data, config, ctx["store"])
        ctx["extra"]["prompts"] = settings
        ctx["extra"]["curriculum"] = facts
        ctx["sampled"] = accuracy
        trainer.add_callback(_order_recorder(accuracy, dataset, ctx))
        return trainer
    return _build


def _gathered_order():
    """``SampledOrder`` that also keeps each reward call's raw ids (a prompt repeated
    ``num_generations`` times), so the ranks' calls can be put back in the global order."""
    from .rewards import SampledOrder

    class GatheredOrder(SampledOrder):
        def __init__(self, inner):
            super().__init__(inner)
            self.calls: list[list[str]] = []

        def __call__(self, prompts, completions, **columns):
            self.calls.append([str(i) for i in columns.get("id") or []])
            return super().__call__(prompts, completions, **columns)

    return GatheredOrder


def global_order(calls_by_rank: list[list[list[str]]], group: int) -> list[str]:
    """The prompt order over all ranks.  TRL's sampler yields one global sequence (each
    prompt ``group`` times in a row); accelerate hands each rank its consecutive share of
    every generation batch in rank order (TRL slices the gathered rewards the same way:
    ``process_slice``), and each rank scores its share in one reward call.  So generation
    batch k is rank 0's call k, then rank 1's call k, ...; every ``group``-th id of that is
    the order the prompts were drawn in (a group split over two ranks is counted once)."""
    from .rewards import collapse_repeats

    flat: list[str] = []
    for k in range(max((len(calls) for calls in calls_by_rank), default=0)):
        for calls in calls_by_rank:
            flat.extend(calls[k] if k < len(calls) else [])
    return collapse_repeats(flat, group)


def _all_ranks(value):
    """``value`` from every rank, in rank order (one process: ``[value]``)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return [value]
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def _order_recorder(sampled, dataset, ctx):
    """A callback writing the prompt order the trainer sampled, over all ranks, into the
    run record (``on_train_end`` runs on every rank, so the gather is collective)."""
    from transformers import TrainerCallback

    expected = list(dataset["id"])

    class OrderRecorder(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            ids = global_order(_all_ranks(sampled.calls), args.num_generations)
            wanted = [expected[i % len(expected)] for i in range(len(ids))]
            ctx["extra"]["sampled_prompt_ids"] = ids[:2000]
            ctx["extra"]["sampled_prompts"] = len(ids)
            ctx["extra"]["follows_curriculum"] = ids == wanted

    return OrderRecorder()
