"""Recipes: a YAML file that builds dataset versions end to end (docs/architecture.md).

A recipe names its **inputs** (files to import, or existing versions), a list of **steps**
(each one a registered step type, ``thinkforge.manifests.steps`` descriptors, with its inputs, its
config and the output dataset name), what to **report**, and the SQL **queries** to print at
the end.  Everything is validated before anything runs: unknown keys, step types and
references are errors that point at the place in the file and suggest the closest valid
name.  ``build_recipe`` runs the steps in order; a step whose resolved config and input
fingerprints match an existing version is reused (no teacher call, no filter run), so a
rerun after a failure continues where it stopped, and rerunning an unchanged recipe
changes nothing.  ``plan_recipe`` is the dry run: the same resolution, nothing written.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from thinkforge.manifests.errors import ConfigError
from thinkforge.manifests.settings import RunSettings

from .recipe_steps import step_types


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false are booleans, so `on:` / `off:` (reasoning
    modes) stay strings instead of turning into True / False as YAML 1.1 has it."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    """Where a recipe's data comes from: a file to import, or an existing version."""

    path: str | None = Field(None, description="file to import (relative to the recipe file)")
    version: str | None = Field(None, description="an existing version: name, name@v3, name@<fp>")
    preset: str | None = Field(None, description="import preset: gsm8k, math500, humaneval")
    kind: str = Field("prompts", description="record kind of the imported file")
    format: str | None = Field(None, description="jsonl, json, parquet, csv, hf (default: extension)")
    map: dict[str, str] = Field(default_factory=dict, description="FIELD: COLUMN or template")
    category: str | None = Field(None, description="category for every imported row")
    license: str | None = Field(None, description="licence for every imported row")
    source: str | None = Field(None, description="source name (part of the prompt id)")
    on_error: str = Field("fail", description="fail, or skip (bad rows -> rejected/)")
    on_duplicate: str | None = Field(None, description="fail, first or skip: rows repeating an "
                                                       "earlier row's key (default: first with "
                                                       "on_error skip, else fail)")

    def options(self, name: str):
        """The importer's options for this input published as ``name``."""
        from .importer import ImportOptions

        return ImportOptions(name=name, kind=self.kind, preset=self.preset, format=self.format,
                             mapping=dict(self.map), category=self.category,
                             license=self.license, source=self.source, on_error=self.on_error,
                             on_duplicate=self.on_duplicate)


class StepSpec(_Strict):
    """One step: ``name`` is the output dataset; ``input`` / ``inputs`` name earlier outputs."""

    name: str = Field(description="output dataset name (split: <name>-train, <name>-validation)")
    type: str = Field(description="step type: generate_sft, generate_rollouts, passrate, "
                                  "curriculum, quality, dedup, decontam, mix, split, or any "
                                  "registered step")
    input: str | None = Field(None, description="shorthand for the step's first input role")
    inputs: dict[str, str | list[str]] = Field(default_factory=dict,
                                               description="role -> input or step name(s)")
    config: dict[str, Any] = Field(default_factory=dict, description="the step type's config")


class ReportSpec(_Strict):
    versions: list[str] = Field(default_factory=list, description="outputs to write reports for")
    dir: str | None = Field(None, description="report directory, relative to the working "
                                              "directory (default: <store>/reports)")


class Recipe(_Strict):
    name: str = Field(description="recipe name (build records go to <store>/runs/builds/)")
    description: str = Field("", description="free text")
    inputs: dict[str, InputSpec] = Field(default_factory=dict, description="name -> input")
    steps: list[StepSpec] = Field(default_factory=list, description="run in order")
    resources: RunSettings = Field(default_factory=RunSettings,
                                   description="how steps run (never what they produce): DuckDB's "
                                               "memory_limit, temp_directory, threads; executor "
                                               "(local|dask), scheduler, workers, partitions, "
                                               "slurm_*; reuse (docs/architecture.md)")
    report: ReportSpec | None = Field(None, description="reports written after the build")
    queries: list[str] = Field(default_factory=list, description="SQL printed at the end")


def _suggest(word: str, choices) -> str:
    near = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f"; did you mean {near[0]!r}?" if near else ""


def _explain(exc: ValidationError, model: type[BaseModel], where: str) -> ConfigError:
    """A pydantic error as what / where / how to fix, with 'did you mean' for unknown keys."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        place = f"{where}.{dotted}" if where.endswith(".config") else f"{where}: {dotted}"
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = list(parent.model_fields) if parent else []
            lines.append(f"{place}: unknown key {loc[-1]!r}{_suggest(loc[-1], known)}"
                         + (f" (known keys: {', '.join(known)})" if known else ""))
        else:
            lines.append(f"{place}: {err['msg']}")
    return ConfigError("invalid recipe:\n  " + "\n  ".join(lines),
                       hint="see docs/recipes.md for every key")


def _model_at(model: type[BaseModel] | None, loc: list) -> type[BaseModel] | None:
    """The pydantic model that holds the field at ``loc`` (to list its valid keys)."""
    import typing

    key_next = False  # the part after a dict field is a user's key, not a field name
    for part in loc:
        if model is None or isinstance(part, int) or key_next:
            key_next = False
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        key_next = typing.get_origin(field.annotation) is dict
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


class ResolvedStep:
    """A step with its validated config and inputs named by recipe reference."""

    def __init__(self, index: int, spec: StepSpec, config: BaseModel, refs: dict[str, Any]):
        self.index, self.spec, self.config, self.refs = index, spec, config, refs
        self.type = step_types()[spec.type]

    @property
    def label(self) -> str:
        return f"steps[{self.index}] ({self.spec.type} -> {self.spec.name})"


def load_recipe(path: str | Path) -> tuple[Recipe, list[ResolvedStep]]:
    """Read and validate a recipe; every problem is a ConfigError naming its place."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)
    except FileNotFoundError:
        raise ConfigError(f"recipe {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"recipe {path} is a directory", hint="give the recipe's .yaml file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"recipe {path} is not UTF-8 text (byte {exc.start})") from None
    except PermissionError:
        raise ConfigError(f"recipe {path} cannot be read (permission denied)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {path}: the top level must be a mapping of keys",
                          hint="start from recipes/demo.yaml")
    # top-level keys starting with "x-" hold YAML anchors shared by steps (as in Compose files)
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, Recipe, str(path)) from None
    _check_name(recipe.name, f"{path}: name", dataset=False)
    base = path.resolve().parent
    for key, spec in recipe.inputs.items():
        where = f"{path}: inputs.{key}"
        if spec.path is not None:  # an imported file is published under its key
            _check_name(key, where)
        if (spec.path is None) == (spec.version is None):
            raise ConfigError(f"{where}: give exactly one of path (a file to import) or version")
        if spec.path is not None and not Path(spec.path).is_absolute():
            spec.path = str((base / spec.path).resolve())
    return recipe, resolve_steps(recipe, str(path))


def _check_name(name: str, place: str, dataset: bool = True) -> None:
    """Recipe, step and output names pass the same check as ``--name`` (they become
    directories and files in the store), before anything runs.  A recipe's name is a build
    record's file name, never a view: the catalog's table names are fine for it."""
    from thinkforge.manifests.store import RESERVED_NAMES, validate_name

    if not dataset and name in RESERVED_NAMES:
        return
    try:
        validate_name(name)
    except ConfigError as exc:
        raise ConfigError(f"{place}: {str(exc).splitlines()[0]}", hint=exc.hint) from None


def resolve_steps(recipe: Recipe, where: str) -> list[ResolvedStep]:
    _check_name(recipe.name, f"{where}: name", dataset=False)
    known: list[str] = list(recipe.inputs)
    resolved = []
    types = step_types()
    for i, spec in enumerate(recipe.steps):
        place = f"{where}: steps[{i}] ({spec.name})"
        _check_name(spec.name, f"{where}: steps[{i}].name")
        if spec.type not in types:
            raise ConfigError(f"{place}: unknown step type {spec.type!r}{_suggest(spec.type, types)}",
                              hint=f"step types: {', '.join(types)}")
        step_type = types[spec.type]
        refs = dict(spec.inputs)
        roles = {r.name: r for r in step_type.roles}
        if spec.input is not None:
            refs.setdefault(step_type.roles[0].name, spec.input)
        for role, value in refs.items():
            if role not in roles:
                raise ConfigError(f"{place}: unknown input role {role!r}{_suggest(role, roles)}",
                                  hint=f"{spec.type} takes: {', '.join(roles)}")
            for ref in value if isinstance(value, list) else [value]:
                if ref not in known:
                    raise ConfigError(
                        f"{place}: input {ref!r} is neither a recipe input nor an earlier step's "
                        f"output{_suggest(ref, known)}", hint=f"defined so far: {', '.join(known)}")
            if roles[role].many and not isinstance(value, list):
                refs[role] = [value]
        for role in step_type.roles:
            if role.name not in refs and not role.optional:
                raise ConfigError(f"{place}: missing input {role.name!r}",
                                  hint=f"add `inputs: {{{role.name}: <input or step name>}}`")
        model = step_type.config_model()
        try:
            config = model.model_validate(spec.config)
        except ValidationError as exc:
            raise _explain(exc, model, f"{place}.config") from None
        if spec.name in known:
            raise ConfigError(f"{place}: output name {spec.name!r} is already used in this recipe",
                              hint="every input and step output needs its own name")
        for output in step_type.output_names(spec.name):
            _check_name(output, f"{place}: output")
        known += step_type.output_names(spec.name)
        resolved.append(ResolvedStep(i, spec, config, refs))
    return resolved
