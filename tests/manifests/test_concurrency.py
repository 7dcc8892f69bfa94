"""Two processes publishing the same dataset at once, and a reader watching."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from thinkforge.manifests import DatasetStore

WRITER = textwrap.dedent("""
    import sys, time
    from thinkforge.manifests import DatasetStore
    store = DatasetStore(sys.argv[1])
    start, tag = float(sys.argv[2]), sys.argv[3]
    rows = [{"id": f"{tag}-{i}", "source": tag, "category": "math",
             "input": [{"role": "user", "content": "x" * 2000 + str(i)}], "verifier": "none"}
            for i in range(3000)]
    with store.writer("race", "prompts", step={"type": "test", "config": {"tag": tag}}) as w:
        w.write(rows)
        while time.time() < start:   # both writers publish at the same moment
            time.sleep(0.001)
    print(w.manifest.version)
""")

READER = textwrap.dedent("""
    import os, sys, time, json
    root, until = sys.argv[1], float(sys.argv[2])
    base = os.path.join(root, "datasets", "race")
    bad = []
    while time.time() < until:
        if os.path.isdir(base):
            for v in os.listdir(base):
                d = os.path.join(base, v)
                m = os.path.join(d, "manifest.json")
                if not os.path.exists(m):
                    bad.append(v)
                    continue
                for f in json.load(open(m))["files"]:
                    if os.path.getsize(os.path.join(d, f["path"])) != f["bytes"]:
                        bad.append(v)
    print(json.dumps(bad))
""")


def test_racing_writers_end_as_distinct_complete_versions(store: DatasetStore, tmp_path):
    start = time.time() + 6
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(store.root), str(start), tag],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for tag in ("a", "b")]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store.root), str(start + 8)],
                              stdout=subprocess.PIPE, text=True, env=env)
    outs = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [o[1] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["v1", "v2"]
    assert json.loads(reader.communicate(timeout=60)[0]) == []  # never saw a partial version
    versions = store.versions("race")
    assert sorted(m.step.config["tag"] for m in versions) == ["a", "b"]
    for m in versions:
        store.verify(m)
        assert m.rows == 3000
    assert list((store.root / ".staging").iterdir()) == []
