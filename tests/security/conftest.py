"""Helpers for the attacks of issue 24: a toy store, and edits made as someone who can
write the store would make them."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

ROWS = pa.table({"id": [f"r{i}" for i in range(12)], "source": ["s"] * 12, "category": ["math"] * 12,
                 "input": [[{"role": "user", "content": f"question {i}"}] for i in range(12)],
                 "verifier": ["none"] * 12})


def publish(store, name="toy", rows=ROWS):
    with store.writer(name, "prompts", step={"type": "t", "config": {"n": rows.num_rows}}) as w:
        w.write(rows)
    return w.manifest


def log_lines(store) -> list[str]:
    return (store.root / "publish.log").read_text().splitlines()


def chained(entries: list[dict]) -> str:
    """Publish-log text whose `prev` fields chain (what a careful forger writes)."""
    from thinkforge.manifests.integrity import manifest_digest

    prev, out = "0" * 64, []
    for e in entries:
        line = json.dumps({**e, "prev": prev}, sort_keys=True)
        out.append(line)
        prev = manifest_digest(line.encode())
    return "\n".join(out) + "\n"


@pytest.fixture
def key(tmp_path, monkeypatch):
    """A signing key outside the store, in $THINKFORGE_KEY (publishes sign from now on)."""
    from thinkforge.manifests.signing import init_key

    monkeypatch.setenv("THINKFORGE_KEY", str(tmp_path / "keys" / "signing-key.pem"))
    return init_key()
