"""The catalog's own tables (``versions``, ``lineage``, ``catalog_meta``): their DDL and rows.

Shared by the catalog file (``catalog.py``) and the in-memory SQL sandbox (``sql.py``), so
both describe the store with the same columns.  Dataset names may not equal these names
(``store.RESERVED_NAMES``): a dataset called ``versions`` would replace the table's view.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # manifests are read without pydantic on the query path (records.py)
    from .manifest import Manifest

TABLES = {
    "catalog_meta": "CREATE TABLE catalog_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "versions": """CREATE TABLE versions (name VARCHAR, version VARCHAR, number INTEGER,
            ref VARCHAR, kind VARCHAR, fingerprint VARCHAR, created_at TIMESTAMPTZ, rows BIGINT,
            bytes BIGINT, shards INTEGER, rejected_rows BIGINT, step VARCHAR, is_latest BOOLEAN,
            path VARCHAR, stats JSON)""",
    "lineage": """CREATE TABLE lineage (name VARCHAR, version VARCHAR, parent_name VARCHAR,
            parent_version VARCHAR, parent_fingerprint VARCHAR)""",
}

# training run records (thinkforge.manifests.training_runs)
RUNS_TABLE = """CREATE OR REPLACE TABLE runs (run_id VARCHAR, method VARCHAR, status VARCHAR,
            data_ref VARCHAR, data_name VARCHAR, data_version VARCHAR, data_fingerprint VARCHAR,
            data_refs VARCHAR[], base_model VARCHAR, output_dir VARCHAR, weights_sha256 VARCHAR,
            world_size INTEGER, steps BIGINT, final_loss DOUBLE, wall_time_s DOUBLE,
            created_at TIMESTAMPTZ, trl_version VARCHAR, torch_version VARCHAR,
            config_hash VARCHAR, config JSON, metrics JSON, base_model_sha256 VARCHAR)"""


def version_row(m: Manifest, path: str, is_latest: bool = False) -> list[Any]:
    return [m.name, m.version, m.number, m.ref, m.kind, m.fingerprint, m.created_at,
            m.rows, sum(f.bytes for f in m.files), len(m.files), m.rejected.rows,
            m.step.type, is_latest, path, json.dumps(m.stats)]


def lineage_rows(m: Manifest) -> list[list[Any]]:
    return [[m.name, m.version, p.name, p.version, p.fingerprint] for p in m.parents]
