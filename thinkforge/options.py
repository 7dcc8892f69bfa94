"""Config fields -> click options: every pydantic field a CLI can express becomes an option
with its name, type, choices, default and help (step configs, the teacher's BackendConfig,
the run settings' executor fields, distillation).  Shared by the command modules."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from .context import RegistryChoice

if TYPE_CHECKING:  # imported where a config is read: `thinkforge sql` never needs pydantic
    from pydantic import BaseModel

NONE = "none"  # the CLI spelling of None for optional fields


def strip_optional(annotation):
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType)\
            and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else annotation), True
    return annotation, False


def _scalar(annotation):
    """(click type, parse function) of a scalar annotation, or None when not a scalar."""
    if typing.get_origin(annotation) is Literal:
        choices = [str(c) for c in typing.get_args(annotation)]
        return click.Choice(choices), str
    for kind, click_type in ((bool, click.BOOL), (int, click.INT), (float, click.FLOAT),
                             (str, click.STRING)):
        if annotation is kind:
            return click_type, kind
    if annotation is Path:
        return click.Path(path_type=Path), Path
    return None


def _literal_or_bool(annotation):
    """``Literal["auto"] | bool`` (think_prefilled): a choice of the words and true/false
    (pydantic reads "true"/"false" as the bool)."""
    args = typing.get_args(annotation)
    if bool not in args or typing.get_origin(annotation) not in (typing.Union, __import__("types").UnionType):
        return None
    words = [str(w) for a in args if typing.get_origin(a) is Literal for w in typing.get_args(a)]
    return (click.Choice([*words, "true", "false"]), str) if words else None


def _list_parser(annotation):
    item = typing.get_args(annotation)[0] if typing.get_args(annotation) else str
    scalar = _scalar(item)
    if scalar is None:
        return None
    convert = scalar[1]

    def parse(text: str) -> list:
        try:
            return [convert(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a comma-separated list") from None
    return parse


def _dict_parser(annotation):
    args = typing.get_args(annotation)
    scalar = _scalar(args[1]) if len(args) == 2 else None
    if scalar is None:
        return None
    convert = scalar[1]

    def parse(text: str) -> dict:
        out = {}
        for item in filter(None, (x.strip() for x in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise click.BadParameter(f"{item!r}: use key=value[,key=value...]")
            try:
                out[key.strip()] = convert(value.strip())
            except ValueError:
                raise click.BadParameter(f"{item!r}: {value!r} is not a number") from None
        return out
    return parse


def _yaml_pairs(flag: str):
    def parse(pairs: tuple[str, ...]) -> dict[str, Any]:
        import yaml

        out: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(f"{pair!r}: use KEY=VALUE, e.g. --{flag} warmup_ratio=0.1")
            out[key.strip()] = yaml.safe_load(value)
        return out
    return parse


def _optional_number(convert):
    return lambda text: None if text.lower() == NONE else convert(text)


def _default_text(field) -> str:
    from pydantic import BaseModel

    if field.is_required():
        return " (required)"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if isinstance(value, BaseModel) or value is None or value == {}:
        return ""
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    elif isinstance(value, bool):
        return ""
    return f" [default: {value}]"


def config_options(model: type[BaseModel], prefix: tuple[str, ...] = (), dest_prefix: str = "cfg__"):
    """(click option, field path, parse) for every field of ``model`` the CLI can express."""
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        flag = "-".join(path).replace("_", "-")
        dest = dest_prefix + "__".join(path)
        annotation, optional = strip_optional(field.annotation)
        help_text = (field.description or name.replace("_", " "))
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        aliases = list(extra.get("cli_aliases", []))  # older flag names kept working
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += config_options(annotation, path, dest_prefix)
            continue
        origin = typing.get_origin(annotation)
        if annotation is bool:
            default = field.default if field.default_factory is None else None
            on = f"(default: {'on' if default else 'off'})" if isinstance(default, bool) else ""
            out.append((click.Option([f"--{flag}/--no-{flag}", dest], default=None,
                                     help=f"{help_text} {on}".strip()), path, lambda v: v))
            continue
        if origin in (list, tuple):
            parse = _list_parser(annotation)
            if parse is not None:
                out.append((click.Option([f"--{flag}", *aliases, dest], metavar="A,B,...",
                                         help=f"{help_text} (comma-separated)"
                                              f"{_default_text(field)}"), path, parse))
            continue
        if origin is dict:
            parse = _dict_parser(annotation)
            if parse is not None:
                out.append((click.Option([f"--{flag}", *aliases, dest], metavar="KEY=VALUE,...",
                                         help=f"{help_text}{_default_text(field)}"), path,
                            parse))
            else:  # free-form values: one KEY=VALUE per use, values read as YAML
                out.append((click.Option([f"--{flag}", *aliases, dest], metavar="KEY=VALUE",
                                         multiple=True, help=f"{help_text} (repeatable)"),
                            path, _yaml_pairs(flag)))
            continue
        scalar = _scalar(annotation) or _literal_or_bool(annotation)
        if "registry" in extra:  # names from a registry, read when the option is used
            scalar = (RegistryChoice(_registry_names(extra["registry"])), str)
        if scalar is None:
            continue  # only through --config FILE
        click_type, convert = scalar
        if optional and click_type in (click.INT, click.FLOAT):
            # `none` unsets an optional number (e.g. --max-tokens-on none: no cap)
            parse = _optional_number(convert)
            metavar = ("N" if convert is int else "X") + f"|{NONE}"
            click_type = click.STRING
        else:
            parse, metavar = _as_is, None  # click already converted it
        # a value that may be left out (`--judge` alone means `--judge undecided`)
        optional_value = ({"is_flag": False, "flag_value": extra["flag_value"]}
                          if "flag_value" in extra else {})
        out.append((click.Option([f"--{flag}", *aliases, dest], type=click_type, metavar=metavar,
                                 help=f"{help_text}{_default_text(field)}", **optional_value),
                    path, parse))
    return out


def _registry_names(target: str):
    """The loader of a field's registry ("package.module:function" returning the names)."""
    def names() -> list[str]:
        import importlib

        module, function = target.split(":")
        return list(getattr(importlib.import_module(module), function)())
    return names


def _as_is(value):
    return value


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


def read_config_file(path: Path | None) -> dict[str, Any]:
    """A YAML/JSON mapping of config fields (``--config FILE``); flags override it."""
    if path is None:
        return {}
    import yaml

    from thinkforge.manifests.errors import ConfigError

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of fields")
    return data


# -- the command ---------------------------------------------------------------------------------
