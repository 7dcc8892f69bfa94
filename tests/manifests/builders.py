"""Helpers for the core's tests: versions are built through the store's own writer (the
importer is curation's, tested there), from the bundled data files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from thinkforge.manifests import DatasetStore, Manifest

# file field -> (question column, answer column) of the bundled data files
LAYOUTS = {"gsm8k": ("question", "answer"), "math500": ("problem", "answer")}


def publish_prompts(store: DatasetStore, path: Path, name: str, layout: str) -> Manifest:
    """Publish a bundled JSONL file as a prompts version with ``store.writer``."""
    question, answer = LAYOUTS[layout]
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        text = record[question]
        gold = str(record[answer]).split("####")[-1].strip()
        extra = {k: v for k, v in record.items() if k not in (question, answer)}
        rows.append({"id": hashlib.sha256(f"{layout}:{text}".encode()).hexdigest()[:16],
                     "source": layout, "category": "math",
                     "input": [{"role": "user", "content": text}], "ground_truth": gold,
                     "verifier": "math", "license": "test", "metadata": json.dumps(extra)})
    with store.writer(name, "prompts", step={"type": "test.prompts",
                                             "config": {"file": Path(path).name}}) as w:
        w.write(rows)
    return w.manifest
