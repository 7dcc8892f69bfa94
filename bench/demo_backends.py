"""`make demo`'s data (SKIP_TRAIN) with each local teacher backend: wall, tokens/s, counts.

For each backend named, ``recipes/demo.yaml`` is copied with ``backend:`` set to it (input
paths made absolute), built with ``--skip-train`` into a fresh store, and measured from
the manifests: per generation step its wall and generation time, completion tokens and
tokens/s; then the outcome the demo is sized for (issue 23 item 7): verified SFT
candidates, verified ON/OFF pairs in the train split, RL pool prompts per bucket.

Usage: flock /tmp/tf-cpu.lock .venv/bin/python bench/demo_backends.py
       [--backends transformers,llamacpp] [--keep DIR] [--size sft_prompts=8,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "demo.yaml"
GENERATION_STEPS = ("demo-sft-raw", "demo-rollouts")


def recipe_for(backend: str, folder: Path, size: dict[str, str]) -> Path:
    text = RECIPE.read_text()
    for name, value in size.items():  # the recipe's x-size anchors, e.g. &sft_prompts 72
        text, n = re.subn(rf"&{name} \d+", f"&{name} {value}", text)
        if n != 1:
            sys.exit(f"{RECIPE}: no x-size anchor &{name}")
    text, n = re.subn(r"(?m)^(\s*backend:\s*)\S+", rf"\g<1>{backend}", text)
    if n == 0:
        sys.exit(f"{RECIPE}: no `backend:` line to change")
    text = text.replace("path: ../", f"path: {REPO}/")
    path = folder / f"demo-{backend}.yaml"
    path.write_text(text)
    return path


def tf(store: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "thinkforge", "--store", str(store), *args],
                          check=True, capture_output=True, text=True).stdout


def sql(store: Path, query: str) -> list[dict]:
    return [json.loads(line) for line in tf(store, "sql", "--format", "json", query).splitlines()
            if line.strip()]


def measure(backend: str, folder: Path, size: dict[str, str]) -> dict:
    store = folder / f"store-{backend}"
    recipe = recipe_for(backend, folder, size)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "thinkforge", "--store", str(store), "build",
                    str(recipe), "--skip-train"], check=True, stdout=subprocess.DEVNULL)
    out = {"backend": backend, "wall_s": time.perf_counter() - began, "load_before": load}
    for step in GENERATION_STEPS:
        p = json.loads(tf(store, "show", step, "--json"))["provenance"]
        out[step] = {k: p.get(k) for k in ("wall_time_s", "generation_time_s",
                                            "completion_tokens", "tokens_per_s")}
    out["sft_raw"] = sql(store, """SELECT reasoning, count(*) AS answers,
        count(*) FILTER (WHERE verified) AS verified,
        count(*) FILTER (WHERE finish_reason = 'length') AS truncated
        FROM "demo-sft-raw" GROUP BY ALL ORDER BY reasoning""")
    out["pairs_train"] = sql(store, """SELECT count(*) AS n FROM (SELECT prompt_id
        FROM "demo-sft-train" WHERE verified GROUP BY prompt_id
        HAVING count(DISTINCT reasoning) = 2)""")[0]["n"]
    out["buckets"] = sql(store, """SELECT bucket, count(*) AS n FROM "demo-rl"
        GROUP BY ALL ORDER BY bucket""")
    out["load_after"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="transformers,llamacpp")
    parser.add_argument("--keep", help="build the stores here (default: a temporary folder)")
    parser.add_argument("--size", default="", help="shrink the demo for a quick check, e.g. "
                        "sft_prompts=8,candidates=2,rl_prompts=4 (default: the recipe's)")
    args = parser.parse_args()
    size = dict(item.split("=") for item in args.size.split(",") if item)
    with tempfile.TemporaryDirectory(prefix="demo-backends-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            print(f"building the demo with backend {backend} ...", file=sys.stderr)
            print(json.dumps(measure(backend, folder, size)), flush=True)


if __name__ == "__main__":
    main()
