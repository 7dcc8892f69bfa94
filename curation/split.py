"""Split: train / validation versions by a hash of the row's id (docs/architecture.md).

A row goes to validation when ``md5(salt:key)`` read as a number in [0, 1) is below
``validation``; the assignment of a row never changes when other rows are added or removed,
so a validation set stays clean across versions.  For ``sft`` the key is ``prompt_id`` by
default: the ON and OFF answers to one prompt land on the same side (no leakage between
train and validation through the paired answer).  Each part is its own version,
``<name>-train`` and ``<name>-validation``, with ``part`` in its step config (exports use
it as the split name).  Row order is kept (a curriculum stays in order).  Each part is a
selection over the input's base (``manifests/selection.py``): positions, not a copy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import connect, quote_ident, quote_literal
from thinkforge.manifests.errors import ConfigError
from thinkforge.manifests.manifest import Step
from thinkforge.manifests.schemas import schema_for
from thinkforge.manifests.selection import base_of, row_relation
from thinkforge.manifests.steps import Role, StepDescriptor, register_step

PARTS = ("train", "validation")


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    validation: float = Field(0.1, ge=0, le=1, description="share of rows (by key) in validation")
    key: Literal["auto", "id", "prompt_id"] = Field(
        "auto", description="column hashed to assign a row: auto = prompt_id for sft (pairs "
                            "stay together), id otherwise")
    salt: str = Field("thinkforge", description="mixed into the hash; change it for another split")


def split_names(name: str) -> dict[str, str]:
    return {part: f"{name}-{part}" for part in PARTS}


def _key(kind: str, config: SplitConfig) -> str:
    key = config.key if config.key != "auto" else ("prompt_id" if kind in ("sft", "rollouts") else "id")
    if key == "prompt_id" and kind not in ("sft", "rollouts", "preferences"):
        raise ConfigError(f"split key prompt_id: {kind} versions have no prompt_id column",
                          hint="use key: id (or auto)")
    if key == "id" and kind in ("rollouts", "preferences"):
        raise ConfigError(f"split key id: {kind} versions have no id column",
                          hint="use key: prompt_id (or auto)")
    return key


def part_step(config: SplitConfig, part: str) -> Step:
    return Step(type="split", config={**config.model_dump(mode="json"), "part": part})


def run_split(store: DatasetStore, data: Manifest, name: str, config: SplitConfig,
              materialize: bool | None = None) -> dict[str, Manifest]:
    """Publish ``<name>-train`` and ``<name>-validation`` (each reused when identical):
    selections over ``data``'s base (``materialize``, default $THINKFORGE_MATERIALIZE:
    plain copies; the same rows and fingerprints either way)."""
    if materialize is None:
        import os

        materialize = os.environ.get("THINKFORGE_MATERIALIZE", "") not in ("", "0")
    key = _key(data.kind, config)
    out: dict[str, Manifest] = {}
    columns = ", ".join(quote_ident(c) for c in schema_for(data.kind).names)
    for part, part_name in split_names(name).items():
        step = part_step(config, part)
        reusable = store.find_reusable(part_name, step, [data.as_parent()])
        if reusable is not None:
            out[part] = reusable
            continue
        store.verify(data)  # sha256 (cached per file) before the rows feed a new version
        con = connect()
        try:
            # the first 8 hex digits of md5 as a fraction of 2^32: uniform in [0, 1)
            score = (f"('0x' || left(md5(? || ':' || {quote_ident(key)}), 8))::UBIGINT "
                     "/ 4294967296.0")
            where = f"{score} < ?" if part == "validation" else f"{score} >= ?"
            info = None if materialize else base_of(store, data)
            with store.writer(part_name, data.kind, step=step, parents=[data],
                              provenance={"key": key, "part": part}) as w:
                if info is None:
                    con.execute(f"COPY (SELECT {columns} FROM {row_relation(store, data)} "
                                f"WHERE {where}) TO {quote_literal(str(w.new_shard_path()))} "
                                "(FORMAT parquet, COMPRESSION zstd)", [config.salt, config.validation])
                else:  # a selection: the positions of the part's rows, in the input's order
                    path, _ = w.select(info, info["inherited"], [], [])
                    stored = "".join(f", {quote_ident(c)}" for c in info["inherited"])
                    con.execute(f"COPY (SELECT __shard::INTEGER AS _shard, __row::BIGINT AS _row"
                                f"{stored} FROM {row_relation(store, data, positions=True)} "
                                f"WHERE {where}) TO {quote_literal(str(path))} "
                                "(FORMAT parquet, COMPRESSION zstd)", [config.salt, config.validation])
            out[part] = w.manifest
        finally:
            con.close()
    return out


def _run_step(ctx, inputs, name, config):
    parts = run_split(ctx.store, inputs["data"], name, config)
    return {split_names(name)[part]: m for part, m in parts.items()}


def _records(store, inputs, name, config):
    return [(split_names(name)[part], part_step(config, part), [inputs["data"]]) for part in PARTS]


STEP = register_step(StepDescriptor(
    type="split", roles=(Role("data", ("prompts", "sft", "rl_pool", "rollouts", "preferences"),
                              help="version to split"),),
    config=SplitConfig, run=_run_step, records=_records,
    outputs=lambda name: list(split_names(name).values()),
    help="Train / validation versions (<name>-train, <name>-validation) by a hash of the id.",
    examples=("thinkforge split gsm8k-sft --name gsm8k-sft --validation 0.1",)))
