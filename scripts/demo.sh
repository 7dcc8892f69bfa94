#!/usr/bin/env bash
# The main job (`make demo`): bundled prompts -> store -> catalog -> SQL.
# THINKFORGE_STORE picks the store (default ./demo-store, recreated on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
export THINKFORGE_STORE="${THINKFORGE_STORE:-./demo-store}"
rm -rf "$THINKFORGE_STORE"
DATA=curation/data
step() { printf '\n== %s\n' "$*" >&2; }

# --- foundation: import, catalog, SQL -------------------------------------------------
step "import the bundled prompts"
thinkforge import "$DATA/gsm8k_train_demo.jsonl" --name gsm8k --preset gsm8k
thinkforge import "$DATA/gsm8k_test.jsonl" --name gsm8k-test --preset gsm8k
thinkforge import "$DATA/math500_demo.jsonl" --name math500 --preset math500
thinkforge import "$DATA/humaneval.jsonl" --name humaneval --preset humaneval

step "catalog"
thinkforge catalog

step "SQL: prompts per source and category, with the median prompt length"
thinkforge sql "SELECT source, category, verifier, count(*) AS prompts,
  median(length(input[1].content))::INT AS median_chars
  FROM (SELECT * FROM gsm8k UNION ALL SELECT * FROM math500 UNION ALL SELECT * FROM humaneval)
  GROUP BY ALL ORDER BY prompts DESC"

step "SQL: MATH-500 levels and subjects from the metadata JSON"
thinkforge sql "SELECT metadata->>'subject' AS subject, count(*) AS n,
  round(avg((metadata->>'level')::INT), 2) AS mean_level
  FROM math500 GROUP BY ALL ORDER BY n DESC LIMIT 5"

# --- generators (paired SFT + rollouts) ------------------------------------------------
# --- filters (pass rate, curriculum, quality, dedup, decontamination) -----------------
