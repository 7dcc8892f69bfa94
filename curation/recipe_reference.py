"""The recipe key reference, generated from the pydantic models themselves.

docs/recipes.md embeds this output between two marker comments, and a test checks it is
current, so the documentation cannot drift from the code.  After changing a config model,
refresh the page with::

    python -m thinkforge.curation.recipe_reference --write-docs
"""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from thinkforge.manifests.settings import RunSettings

from .recipe import InputSpec, Recipe, ReportSpec, StepSpec
from .recipe_steps import step_types


def _type_name(annotation) -> str:
    text = str(annotation).replace("typing.", "")
    text = re.sub(r"thinkforge\.(?:[a-z_]+\.)+", "", text)  # module paths: the class name is enough
    for noise in ("<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None")


def _default_value(field):
    return field.default_factory() if field.default_factory is not None else field.default


def _default(field, override=PydanticUndefined) -> str:
    if override is not PydanticUndefined:
        value = override
    elif field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    else:
        value = _default_value(field)
    if isinstance(value, BaseModel):
        return "(see below)"
    return f"`{value!r}`".replace("|", "\\|")


def model_table(model: type[BaseModel], prefix: str = "", flatten: bool = True,
                defaults: dict | None = None) -> list[str]:
    """Rows `| key | type | default | meaning |` of a model, nested models flattened.

    A nested model's defaults are those of the field holding it (``sampling_off`` is greedy
    although a bare ``SamplingConfig`` samples at 0.6): ``defaults`` carries them down.
    """
    rows, nested = [], []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        help_text = (field.description or "").replace("|", "\\|").replace("\n", " ")
        type_text = _type_name(field.annotation).replace("|", "\\|")
        override = (defaults or {}).get(name, PydanticUndefined)
        rows.append(f"| `{key}` | {type_text} | {_default(field, override)} | {help_text} |")
        inner = [a for a in (field.annotation, *typing.get_args(field.annotation))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        origin = typing.get_origin(field.annotation)
        if inner and flatten and origin is not dict:
            value = None if field.default is PydanticUndefined and field.default_factory is None \
                else _default_value(field)
            nested.append((f"{key}[]" if origin is list else key, inner[0],
                           value.model_dump() if isinstance(value, BaseModel) else None))
    for key, inner, inner_defaults in nested:
        rows += model_table(inner, prefix=f"{key}.", defaults=inner_defaults)
    return rows


HEADER = ["| key | type | default | meaning |", "|---|---|---|---|"]


def reference_markdown() -> str:
    parts = ["### Top level", *HEADER, *model_table(Recipe, flatten=False),
             "", "### `resources`", *HEADER, *model_table(RunSettings),
             "", "### `inputs.<name>`", *HEADER, *model_table(InputSpec),
             "", "### `steps[]`", *HEADER, *model_table(StepSpec),
             "", "### `report`", *HEADER, *model_table(ReportSpec)]
    for step in step_types().values():
        roles = ", ".join(f"`{r.name}` ({'/'.join(r.kinds)}{', list' if r.many else ''}"
                          f"{', optional' if r.optional else ''})" for r in step.roles)
        parts += ["", f"### step `{step.type}`: {step.help}", "", f"Inputs: {roles}.", "",
                  *HEADER, *model_table(step.config_model(), prefix="config.")]
    return "\n".join(parts) + "\n"


START, END = "<!-- recipe-reference:start -->\n", "<!-- recipe-reference:end -->\n"


def write_docs(page: Path) -> bool:
    """Replace the block between the markers in ``page``; return True when it changed."""
    text = page.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{page}: markers {START.strip()} / {END.strip()} not found")
    new = head + START + reference_markdown() + END + tail
    page.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    if "--write-docs" in sys.argv:
        changed = write_docs(Path(__file__).resolve().parent.parent / "docs" / "recipes.md")
        print("docs/recipes.md updated" if changed else "docs/recipes.md already current", file=sys.stderr)
    else:
        print(reference_markdown(), end="")
