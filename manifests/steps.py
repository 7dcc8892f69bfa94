"""One step, one descriptor (docs/architecture.md): what the CLI, recipes, dry-run, reuse and the
Python API all read.

A step is versions in, version(s) out.  Its descriptor says, once:

* ``type``: the recipe step type and the registry key (``quality``); ``record_type`` is
  what the manifest's ``step.type`` says (``filter.quality``; kept from before the
  registry so existing versions stay reusable);
* ``roles``: the named inputs and the record kinds each accepts (``Role``);
* ``output_kind``: the kind it publishes (``None``: the kind of its first input);
* ``config``: the pydantic model of its settings (the CLI options are derived from it);
* ``run(ctx, inputs, name, config) -> {output name: Manifest}``;
* optional hooks: ``records`` (what each output records as its step and parents, used to
  predict reuse; default: one output, ``record_type`` + the config, parents = the role
  inputs in order), ``plan`` (extra facts a dry run prints, e.g. request counts) and
  ``outputs`` (output names, default ``[name]``).

``plan_step`` is the dry run and ``execute`` the real run: both call ``predict_reuse``, so
what a dry run says is reused is exactly what a run reuses (tests/test_steps_contract.py).

Declaring a step::

    from thinkforge.manifests.steps import Role, StepDescriptor, register_step

    register_step(StepDescriptor(
        type="min_length", record_type="filter.min_length", group="filter",
        roles=(Role("data", ("sft", "prompts")),), output_kind=None,
        config=MinLengthConfig, run=run_min_length,
        help="drop rows whose output is shorter than min_chars",
        examples=("thinkforge filter min_length gsm8k-sft --name sft-long --min-chars 40",)))

The modules that declare steps are found through the ``thinkforge.steps`` entry points
(``load_steps``; thinkforge's own are listed in pyproject.toml, a plugin package lists its
own); a module anywhere else also registers its steps when it is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .errors import ConfigError
from .manifest import Manifest, Step

Inputs = dict[str, Any]  # role -> Manifest, or a list of them for a `many` role
Record = tuple[str, Step, list[Manifest]]  # output name, step record, parents


@dataclass(frozen=True)
class Role:
    """A named input of a step and the record kinds it accepts."""

    name: str
    kinds: tuple[str, ...]
    many: bool = False          # a list of versions (decontam's benchmarks)
    optional: bool = False
    flag: bool = False          # CLI: an option --<name> (default: the first role is positional)
    files: bool = False         # CLI: a value naming an existing file is passed as a Path
    help: str = ""


@dataclass(frozen=True)
class Flag:
    """A CLI convenience flag that sets config fields to constants (``--keep-all``)."""

    name: str
    sets: dict[str, Any]
    help: str


@dataclass
class RunContext:
    """How a step runs (never part of its config: none of this changes results)."""

    store: Any                  # manifests.DatasetStore
    quiet: bool = False
    settings: Any = None        # RunSettings (a mapping is validated into one)
    run_id: str | None = None   # generation checkpoints

    def __post_init__(self):
        from .settings import run_settings

        self.settings = run_settings(self.settings)


RunFn = Callable[[RunContext, Inputs, str, Any], dict[str, Manifest]]


@dataclass(frozen=True)
class StepDescriptor:
    type: str
    roles: tuple[Role, ...]
    config: type[BaseModel] | str        # the model, or "module:Class" (loaded when needed)
    run: RunFn | str                     # the function, or "module:function"
    output_kind: str | None = None       # None: the kind of the first input
    record_type: str | None = None       # manifest step.type (default: type)
    group: str | None = None             # CLI group (filter, generate) or None: top level
    command: str | None = None           # CLI name (default: type)
    help: str = ""
    examples: tuple[str, ...] = ()
    flags: tuple[Flag, ...] = ()
    records: Callable[[Any, Inputs, str, Any], list[Record]] | None = None
    plan: Callable[[Any, Inputs, str, Any], dict[str, Any]] | None = None
    outputs: Callable[[str], list[str]] | None = None
    dump_mode: str = "json"              # how the config is recorded (model_dump mode)
    resources: bool = False              # takes DuckDB resources (--memory-limit, --temp-dir)
    derive_cli: bool = True              # False: its command is written by hand (thinkforge/)
    # outputs that are not versions (training runs): the step finds what it would reuse
    reuse: Callable[[Any, Inputs, str, Any], dict[str, Any]] | None = None
    # --executor dask: the step runs on the driver and sends its own work to the workers
    # (generation: prompt partitions, thinkforge.manifests.executor.fan_out_spec); `partitions: 1`
    # runs it whole as one task instead
    fan_out: bool = False

    # -- derived --------------------------------------------------------------------------
    @property
    def step_type(self) -> str:
        return self.record_type or self.type

    @property
    def cli_name(self) -> str:
        return self.command or self.type

    def config_model(self) -> type[BaseModel]:
        return _load(self.config)

    def run_fn(self) -> RunFn:
        return _load(self.run)

    def output_names(self, name: str) -> list[str]:
        return self.outputs(name) if self.outputs else [name]

    def kind_of(self, inputs: Inputs) -> str | None:
        if self.output_kind is not None:
            return self.output_kind
        first = inputs.get(self.roles[0].name) if self.roles else None
        first = first[0] if isinstance(first, list) and first else first
        return first.kind if isinstance(first, Manifest) else None

    def record(self, config: BaseModel) -> Step:
        return Step(type=self.step_type, config=config.model_dump(mode=self.dump_mode))

    def records_of(self, store, inputs: Inputs, name: str, config: BaseModel) -> list[Record]:
        if self.records is not None:
            return self.records(store, inputs, name, config)
        parents: list[Manifest] = []
        for role in self.roles:
            value = inputs.get(role.name)
            parents += value if isinstance(value, list) else ([value] if value is not None else [])
        return [(name, self.record(config), parents)]

    def check_inputs(self, inputs: Inputs) -> None:
        """Every required role present (each step checks the kinds it gets itself, with its
        own message; ``Role.kinds`` is what it accepts, for help and docs)."""
        for role in self.roles:
            value = inputs.get(role.name)
            if (value is None or value == []) and not role.optional:
                raise ConfigError(f"{self.type}: missing input {role.name!r}",
                                  hint=f"{self.type} takes: "
                                       + ", ".join(r.name for r in self.roles))


def _load(target):
    if isinstance(target, str):
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)
    return target


REGISTRY: dict[str, StepDescriptor] = {}


def register_step(descriptor: StepDescriptor) -> StepDescriptor:
    """Add a step to the registry (a later declaration of the same type replaces it)."""
    REGISTRY[descriptor.type] = descriptor
    return descriptor


def unregister(step_type: str) -> None:
    REGISTRY.pop(step_type, None)


def predict_reuse(store, descriptor: StepDescriptor, inputs: Inputs, name: str,
                  config: BaseModel) -> dict[str, Manifest | None]:
    """For each output of the step: the existing version a run would reuse, or None.

    The rule is the store's (same step type and config, same input fingerprints); a
    generation that had failed requests is not reused (its rerun retries them).
    """
    if descriptor.reuse is not None:
        return descriptor.reuse(store, inputs, name, config)
    out: dict[str, Manifest | None] = {}
    for output, step, parents in descriptor.records_of(store, inputs, name, config):
        found = store.find_reusable(output, step, [p.as_parent() for p in parents]) \
            if store.datasets_dir.is_dir() else None
        if found is not None and found.provenance.get("errors_by_kind"):
            found = None
        out[output] = found
    return out


def plan_step(store, descriptor: StepDescriptor, inputs: Inputs, name: str,
              config: BaseModel) -> dict[str, Any]:
    """What a run would do, as printed by --dry-run (and `tf.steps.X(..., dry_run=True)`)."""
    descriptor.check_inputs(inputs)
    reuse = predict_reuse(store, descriptor, inputs, name, config)
    records = descriptor.records_of(store, inputs, name, config)
    plan = {"type": descriptor.type, "name": name, "kind": descriptor.kind_of(inputs),
            "step": records[0][1].model_dump() if records else None,
            "inputs": [p.ref for p in records[0][2]] if records else [],
            "outputs": {n: (m.ref if m else None) for n, m in reuse.items()},
            "reuses": (next(iter(reuse.values())).ref
                       if reuse and all(reuse.values()) and len(reuse) == 1 else None)}
    if descriptor.plan is not None:
        plan.update(descriptor.plan(store, inputs, name, config))
    return plan


def execute(ctx: RunContext, descriptor: StepDescriptor, inputs: Inputs, name: str,
            config: BaseModel) -> dict[str, Manifest]:
    """Run the step, or return the versions ``predict_reuse`` finds (the dry run's answer)."""
    descriptor.check_inputs(inputs)
    reuse = predict_reuse(ctx.store, descriptor, inputs, name, config)
    if reuse and all(m is not None for m in reuse.values()):
        return dict(reuse)  # type: ignore[arg-type]
    from .executor import run_on_dask

    spec = ctx.settings.executor_spec()
    resources = ctx.settings.local()
    if spec.is_dask:  # the step itself runs here or on a worker as a local run
        ctx = RunContext(ctx.store, quiet=ctx.quiet, settings=resources, run_id=ctx.run_id)
    if spec.is_dask and descriptor.fan_out and spec.partitions != 1:
        from .executor import fanning_out

        with fanning_out(spec):  # runs here; its partitions go to the workers
            return descriptor.run_fn()(ctx, inputs, name, config)
    if spec.is_dask:  # the same run, as a task on a Dask worker (manifests/executor.py)
        modules = tuple(sorted({d.run.split(":")[0] if isinstance(d.run, str)
                                else d.run.__module__ for d in REGISTRY.values()}))
        return run_on_dask(spec, run_step_task, ctx.store, descriptor.type, inputs, name,
                           config, resources, ctx.run_id, modules,
                           partition_task=run_partition_task)
    return descriptor.run_fn()(ctx, inputs, name, config)


def run_step_task(store_at: tuple[type, str], step_type: str, inputs: dict[str, Any], name: str,
                  config: BaseModel, resources: dict[str, Any], run_id: str | None,
                  step_modules: tuple[str, ...]) -> dict[str, Manifest]:
    """What a Dask worker runs for ``--executor dask``: rebuild the store and the step there
    and run it.  Everything stateful (store, DuckDB, HTTP clients, teacher backends) is
    created here, on the worker, never pickled."""
    from .executor import unplain

    for module in step_modules:  # the modules that declare the steps (and their run functions)
        importlib.import_module(module)
    if step_type not in REGISTRY:  # declared somewhere else: every entry point
        load_steps()
    from .partitions import threads_here

    store_cls, store_root = store_at
    store = store_cls(store_root)
    real = {role: unplain(store, value) for role, value in inputs.items()}
    if resources.get("threads") is None:  # DuckDB: this worker's threads, not the host's cores
        resources = {**resources, "threads": threads_here()}
    ctx = RunContext(store, quiet=True, settings=resources, run_id=run_id)
    return REGISTRY[step_type].run_fn()(ctx, real, name, config)


def run_partition_task(store_at: tuple[type, str], step_type: str, inputs: dict[str, Any],
                       name: str, config, resources: dict[str, Any], keys: dict[str, str],
                       index: int, count: int, out: str, workers_by_host: dict[str, int],
                       step_modules: tuple[str, ...],
                       ranges: dict[str, list] | None = None) -> dict[str, Any]:
    """What a Dask worker runs for one partition of a filter: the step's own run function
    with its inputs narrowed to the partition (by key hash, or ``ranges``: its own rows by
    position) and its writes sent to partition files.  Its
    DuckDB gets this worker's threads (``threads``)."""
    import uuid
    from pathlib import Path

    from .executor import unplain
    from .partitions import Partition, running, threads_here

    for module in step_modules:
        importlib.import_module(module)
    if step_type not in REGISTRY:
        load_steps()
    store_cls, store_root = store_at
    store = store_cls(store_root)
    real = {role: unplain(store, value) for role, value in inputs.items()}
    resources = dict(resources)
    if resources.get("threads") is None:
        resources["threads"] = threads_here(workers_by_host)
    attempt = Path(out) / f"p{index:04d}-{uuid.uuid4().hex[:8]}"  # a rerun writes afresh
    partition = Partition(count=count, index=index, keys=keys, out=attempt,
                          ranges={ref: [tuple(r) for r in runs] for ref, runs in (ranges or {}).items()})
    with running(partition):
        made = REGISTRY[step_type].run_fn()(RunContext(store, quiet=True, settings=resources),
                                            real, name, config)
    return next(iter(made.values()))


def load_steps() -> dict[str, StepDescriptor]:
    """The registry with every step declared: imports each module named by a
    ``thinkforge.steps`` entry point (thinkforge's own and any plugin's) once."""
    from . import plugins

    for name in plugins.discovered("steps"):
        plugins.load("steps", name)
    return REGISTRY


def build_config(model: type[BaseModel], *layers: dict[str, Any], where: str = "config"):
    """Validate ``model`` from layered mappings (file, then flags); later layers win, nested
    mappings merge key by key.  Pydantic errors become a ConfigError naming the field."""
    from pydantic import ValidationError

    data: dict[str, Any] = {}
    for layer in layers:
        data = _merge(data, layer or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(model, e) for e in exc.errors())
        raise ConfigError(f"invalid {model.__name__} ({where}): {problems}") from None


def _problem(model: type[BaseModel], error: dict) -> str:
    """One validation error; an unknown key gets a "did you mean" from the model's fields."""
    import difflib

    place = ".".join(map(str, error["loc"])) or "config"
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        near = difflib.get_close_matches(str(error["loc"][0]), list(model.model_fields), n=1)
        return f"{place}: unknown key" + (f"; did you mean {near[0]!r}?" if near else "")
    return f"{place}: {error['msg']}"


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
