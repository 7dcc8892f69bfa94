"""Issue 9 item 8: every version has a `name@vN/rejected` view, empty when nothing was rejected."""

from __future__ import annotations

import duckdb
from thinkforge.manifests.catalog import refresh_catalog, run_sql

from .builders import publish_prompts


def _sql(store, query):
    return run_sql(store, query).table().to_pylist()


def test_a_version_without_rejections_has_an_empty_rejected_view(store, data_dir):
    publish_prompts(store, data_dir / "gsm8k_train_demo.jsonl", "gsm8k", "gsm8k")
    assert store.resolve("gsm8k@v1").rejected.rows == 0
    assert _sql(store, 'SELECT count(*) AS n FROM "gsm8k@v1/rejected"') == [{"n": 0}]
    columns = run_sql(store, 'SELECT * FROM "gsm8k@v1/rejected"').table().column_names
    assert "reason" in columns and "id" in columns        # the version's columns + reason
    assert _sql(store, 'SELECT reason, count(*) AS n FROM "gsm8k@v1/rejected" GROUP BY ALL') == []
    assert _sql(store, 'SELECT count(*) AS n FROM "gsm8k/rejected"') == [{"n": 0}]   # the latest's


def test_an_empty_version_has_an_empty_rejected_view_too(store):
    with store.writer("nothing", "prompts", step={"type": "subset"}, parents=[]) as writer:
        writer.write([])
    assert _sql(store, 'SELECT count(*) AS n FROM "nothing@v1/rejected"') == [{"n": 0}]


def test_a_catalog_of_an_older_layout_is_rebuilt_with_the_views(store, data_dir):
    publish_prompts(store, data_dir / "gsm8k_train_demo.jsonl", "gsm8k", "gsm8k")
    refresh_catalog(store)
    con = duckdb.connect(str(store.catalog_path))   # what an older thinkforge wrote
    con.execute('DROP VIEW "gsm8k@v1/rejected"')
    con.execute("DELETE FROM catalog_meta WHERE key = 'layout'")
    con.execute("UPDATE catalog_meta SET value = 'old' WHERE key = 'signature'")
    con.close()
    publish_prompts(store, data_dir / "math500_demo.jsonl", "math500", "math500")
    assert _sql(store, 'SELECT count(*) AS n FROM "gsm8k@v1/rejected"') == [{"n": 0}]
