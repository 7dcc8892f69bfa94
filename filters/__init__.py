"""DuckDB filter steps (docs/filters.md): version(s) in, one new version out, out of core.

Public API (plain functions with pydantic configs; each returns the published Manifest):

* ``thinkforge.filters.passrate.run_passrate(store, rollouts, prompts, name, PassRateConfig)``
* ``thinkforge.filters.curriculum.run_curriculum(store, pool, name, CurriculumConfig)``
* ``thinkforge.filters.quality.run_quality(store, data, name, QualityConfig)``
* ``thinkforge.filters.dedup.run_dedup(store, data, name, DedupConfig)``
* ``thinkforge.filters.decontam.run_decontam(store, data, benchmarks, name, DecontamConfig)``

Every function also takes ``resources=Resources(memory_limit=..., temp_directory=...)``.
This package imports only ``manifests`` (and numpy for MinHash): never torch or transformers.
"""

# register how filters split on Dask (separable ones; curriculum and near dedup in phases)
from . import partitioned, partitioned_curriculum, partitioned_dedup, partitioned_passrate  # noqa: E402,F401
