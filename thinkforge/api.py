"""The Python API: the store, its versions and every registered step, for notebooks and
training scripts (the CLI is a thin layer over the same functions).

    import thinkforge as tf

    store = tf.Store("forge-store")          # or tf.Store() for $THINKFORGE_STORE / ./forge-store
    v = store.get("gsm8k@v2")                # name, name@v3, name@latest, name@<fingerprint>
    df = v.to_pandas()                       # also v.to_arrow(), v.to_hf(), v.manifest, v.verify()
    store.sql('SELECT category, count(*) AS n FROM gsm8k GROUP BY ALL')   # a DataFrame
    clean = tf.steps.quality(store, "gsm8k-sft", name="gsm8k-sft-clean", max_tokens_off=4096)

``store.sql`` runs in the same read-only sandbox as `thinkforge sql`.  ``tf.steps.<type>``
exists for every registered step (``thinkforge.manifests.steps``): its positional arguments fill the
step's input roles in order (versions as references or ``Version`` objects), keywords
name roles (``rollouts=``, ``against=[...]``) or config fields, ``config=`` takes a mapping
or a config model, ``dry_run=True`` returns the plan instead of running, and the result
is the published (or reused) ``Version``, or a dict of them for a step with several
outputs (``split``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Version:
    """One immutable dataset version: its manifest and its rows in the version's order."""

    def __init__(self, store: Store, manifest):
        self.store, self.manifest = store, manifest

    def __repr__(self) -> str:
        return f"<Version {self.ref} {self.manifest.kind} rows={self.manifest.rows}>"

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def rows(self) -> int:
        return self.manifest.rows

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    def to_arrow(self, *, verify: bool = False):
        """A pyarrow Table of every row, shards in order (sizes checked; sha256 with verify)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from thinkforge.manifests.schemas import schema_for

        store = self.store.datasets
        (store.verify if verify else store.check_sizes)(self.manifest)
        if self.manifest.selection is None:
            tables = [pq.read_table(p) for p in store.shard_paths(self.manifest)]
            if not tables:
                return schema_for(self.kind).empty_table()
            return pa.concat_tables(tables, promote_options="permissive")
        from thinkforge.manifests.selection import read_table  # a selection: its rows resolved

        return read_table(store, self.manifest).cast(schema_for(self.kind))

    def to_pandas(self, *, verify: bool = False):
        return self.to_arrow(verify=verify).to_pandas()

    def to_hf(self, *, verify: bool = True):
        """A ``datasets.Dataset`` in the version's order (sha256 checked first: the bytes
        leave the store, as for a trainer)."""
        from thinkforge.manifests.errors import require

        datasets = require("datasets", "hf")
        return datasets.Dataset(self.to_arrow(verify=verify))

    def verify(self) -> Version:
        """Check the sha256 of every shard against the manifest; raises IntegrityError."""
        self.store.datasets.verify(self.manifest)
        return self

    def rejected(self):
        """The rows the step dropped, with their ``reason`` (a pyarrow Table)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.manifest.selection is not None:
            from thinkforge.manifests.selection import read_rejected

            return read_rejected(self.store.datasets, self.manifest)
        paths = self.store.datasets.rejected_paths(self.manifest)
        return pa.concat_tables([pq.read_table(p) for p in paths],
                                promote_options="permissive") if paths else pa.table({})


class Store:
    """A store directory (``None``: ``$THINKFORGE_STORE`` or ``./forge-store``)."""

    def __init__(self, path: str | Path | None = None):
        from thinkforge.manifests import DatasetStore

        self.datasets = DatasetStore(path)

    def __repr__(self) -> str:
        return f"<Store {self.datasets.root}>"

    @property
    def root(self) -> Path:
        return self.datasets.root

    def get(self, ref: str) -> Version:
        return Version(self, self.datasets.resolve(ref))

    def names(self) -> list[str]:
        return self.datasets.names() if self.datasets.datasets_dir.is_dir() else []

    def versions(self, name: str) -> list[Version]:
        return [Version(self, m) for m in self.datasets.versions(name)]

    def sql(self, query: str, *, limit: int | None = None, verify: bool = False):
        """A pandas DataFrame of a read-only query (`thinkforge sql`'s sandbox and views)."""
        from .context import run_store_sql

        return run_store_sql(self.datasets, query, limit=limit, verify=verify).table().to_pandas()


class _Steps:
    """``tf.steps.<type>(store, *inputs, name=..., **config)`` for every registered step;
    dotted types are attributes of attributes: ``tf.steps.train.sft`` is ``train.sft``."""

    def __init__(self, prefix: str = ""):
        self._prefix = prefix

    def _names(self) -> list[str]:
        from thinkforge.manifests.steps import load_steps

        return sorted({t.removeprefix(self._prefix).split(".")[0] for t in load_steps()
                       if t.startswith(self._prefix)})

    def __dir__(self):
        return self._names()

    def __getattr__(self, attr: str):
        from thinkforge.manifests.steps import load_steps

        steps = load_steps()
        step_type = self._prefix + ("import" if attr == "import_" else attr)  # a Python keyword
        if not attr.startswith("_") and step_type not in steps and any(
                t.startswith(step_type + ".") for t in steps):
            return _Steps(step_type + ".")  # a family: tf.steps.train
        if attr.startswith("_") or step_type not in steps:
            raise AttributeError(f"no step {step_type!r}; steps: {', '.join(sorted(steps))}")
        descriptor = steps[step_type]

        def call(store: Store | str | Path, *inputs, name: str, config=None,
                 dry_run: bool = False, quiet: bool = True, resources: dict | None = None,
                 **fields):
            return run_step(descriptor, store, inputs, name=name, config=config,
                            dry_run=dry_run, quiet=quiet, resources=resources, fields=fields)

        call.__name__ = step_type
        call.__doc__ = f"{descriptor.help}\n\nInputs: " + ", ".join(
            f"{r.name} ({'/'.join(r.kinds)})" for r in descriptor.roles)
        return call


def run_step(descriptor, store, inputs: tuple, *, name: str, config, dry_run: bool,
             quiet: bool, resources: dict | None, fields: dict[str, Any]):
    from thinkforge.manifests.errors import ConfigError
    from thinkforge.manifests.steps import RunContext, build_config, execute, plan_step

    store = store if isinstance(store, Store) else Store(store)
    roles = {r.name: r for r in descriptor.roles}
    given: dict[str, Any] = {}
    positional = [r for r in descriptor.roles]
    if len(inputs) > len(positional):
        raise ConfigError(f"{descriptor.type} takes {len(positional)} input(s): "
                          + ", ".join(roles))
    for role, value in zip(positional, inputs, strict=False):  # later roles may be keywords
        given[role.name] = value
    for key in [k for k in fields if k in roles]:
        given[key] = fields.pop(key)
    resolved: dict[str, Any] = {}
    for role_name, value in given.items():
        role = roles[role_name]
        values = value if isinstance(value, (list, tuple)) else [value]
        out = [_manifest(store, role, v) for v in values]
        resolved[role_name] = out if role.many else out[0]
    model = descriptor.config_model()
    base = config.model_dump() if hasattr(config, "model_dump") else dict(config or {})
    cfg = build_config(model, base, fields, where=f"tf.steps.{descriptor.type}")
    if dry_run:
        return plan_step(store.datasets, descriptor, resolved, name, cfg)
    made = execute(RunContext(store.datasets, quiet=quiet, settings=resources),
                   descriptor, resolved, name, cfg)
    versions = {n: Version(store, m) for n, m in made.items()}
    return next(iter(versions.values())) if len(versions) == 1 else versions


def _manifest(store: Store, role, value):
    if isinstance(value, Version):
        return value.manifest
    if role.files and isinstance(value, Path):
        return value
    if hasattr(value, "ref") and hasattr(value, "fingerprint"):
        return value  # a Manifest
    return store.datasets.resolve(str(value))


steps = _Steps()
