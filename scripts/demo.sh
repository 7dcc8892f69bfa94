#!/usr/bin/env bash
# The main job (`make demo`): build recipes/demo.yaml with the embedded teacher
# (SmolLM2-135M-Instruct on the CPU), then look at the result with SQL.
#   bundled easy arithmetic prompts -> paired reasoning ON/OFF SFT + K=4 rollouts -> pass rate,
#   buckets, dedup, decontamination vs GSM8K test, curriculum -> SFT quality, dedup,
#   decontamination, mix, train/validation split -> report
# The store persists (default ./demo-store; THINKFORGE_STORE picks another): a rerun reuses
# every version and calls no teacher. `make clean` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
export THINKFORGE_STORE="${THINKFORGE_STORE:-./demo-store}"
step() { printf '\n== %s\n' "$*" >&2; }

step "build recipes/demo.yaml${SKIP_TRAIN:+ (SKIP_TRAIN: no training)}"
# the recipe ends with a short SFT and GRPO run; SKIP_TRAIN=1 make demo builds only the data
thinkforge build recipes/demo.yaml

step "catalog"
thinkforge catalog

step "SQL: paired SFT answers (ON and OFF answers to one prompt share pair_id)"
thinkforge sql "SELECT pair_id, reasoning, verified, answer, ground_truth,
  left(replace(output, chr(10), ' '), 60) AS output
  FROM \"demo-sft-raw\" ORDER BY pair_id, reasoning LIMIT 6"

step "SQL: verified rate and tokens per reasoning mode"
thinkforge sql "SELECT reasoning, count(*) AS answers, count(verified) AS checked,
  round(avg(verified::INT), 3) AS verified_rate, sum(output_tokens) AS output_tokens,
  count(*) FILTER (WHERE finish_reason = 'length') AS truncated
  FROM \"demo-sft-raw\" GROUP BY ALL ORDER BY reasoning"

step "SQL: rollouts per prompt (K=4): correct, format, reward"
thinkforge sql "SELECT prompt_id, count(*) AS samples, count(*) FILTER (WHERE correct) AS correct,
  count(*) FILTER (WHERE format_ok) AS format_ok, round(avg(reward), 2) AS mean_reward
  FROM \"demo-rollouts\" GROUP BY ALL ORDER BY correct DESC, prompt_id"

step "SQL: bucket counts of the RL pool, and the first curriculum batches"
thinkforge sql "SELECT bucket, count(*) AS prompts, round(avg(pass_rate), 3) AS mean_pass_rate
  FROM \"demo-rl\" GROUP BY ALL ORDER BY bucket"
thinkforge sql "SELECT curriculum_batch AS batch, curriculum_position AS pos, pass_rate, bucket,
  left(input[1].content, 60) AS prompt FROM \"demo-rl\"
  ORDER BY curriculum_batch, curriculum_position LIMIT 8"

step "SQL: what the filters dropped, by version and reason"
thinkforge sql "SELECT name, version, rows, rejected_rows, step FROM versions
  WHERE name LIKE 'demo-%' AND rejected_rows > 0 ORDER BY created_at"

if [ -z "${SKIP_TRAIN:-}" ]; then
  step "training runs: which weights came from which exact data (SQL join runs -> versions)"
  thinkforge runs
  thinkforge sql "SELECT r.method, v.ref AS data, left(r.data_fingerprint, 12) AS fingerprint,
    r.steps, round(r.final_loss, 4) AS final_loss, left(r.weights_sha256, 12) AS weights
    FROM runs r JOIN versions v ON v.fingerprint = r.data_fingerprint ORDER BY r.created_at"
fi

# --- what the demo made, plainly, and what to do next ------------------------------------
step "next steps"
# rows and verified answers from the manifests' stats (no data is read)
count() {
  thinkforge show "$1" --json 2>/dev/null | python3 -c 'import json, sys
m = json.load(sys.stdin); rates = (m.get("stats") or {}).get("verified_rate") or {}
print(m["rows"] if sys.argv[1] == "rows" else sum(v.get("true") or 0 for v in rates.values()))' "$2"
}
# the counts the demo is sized for: verified ON/OFF pairs (one prompt, both modes verified)
# in the train split, and RL pool prompts per pass-rate bucket
pairs=$(thinkforge sql --format csv "SELECT count(*) FROM (SELECT prompt_id FROM \"demo-sft-train\"
  WHERE verified GROUP BY prompt_id HAVING count(DISTINCT reasoning) = 2)" | tail -1)
buckets=$(thinkforge sql --format csv "SELECT string_agg(bucket || '=' || n, ' ' ORDER BY bucket)
  FROM (SELECT bucket, count(*) AS n FROM \"demo-rl\" GROUP BY ALL)" | tail -1)
train_rows=$(count demo-sft-train rows)
train_verified=$(count demo-sft-train verified)
raw_rows=$(count demo-sft-raw rows)
raw_verified=$(count demo-sft-raw verified)
{
  echo "The teacher wrote $raw_rows SFT candidates; $raw_verified of them verified right."
  if [ "$train_rows" = "0" ]; then
    echo "demo-sft-train holds no answers: rejection sampling (filter correct) keeps only"
    echo "verified ones, and the embedded 135M teacher got none right that survived the filters."
    echo "That is the teacher, not the pipeline: swap in a real one (below)."
  else
    echo "demo-sft-train holds $train_rows answers, $train_verified of them verified: rejection"
    echo "sampling (filter correct) kept only verified answers."
  fi
  echo "Counts: $pairs verified ON/OFF pairs in demo-sft-train; demo-rl prompts by pass-rate"
  echo "bucket: ${buckets:-none}."
  echo
  echo "Export for a trainer:"
  echo "  thinkforge --store $THINKFORGE_STORE export demo-sft-train --format trl-prompt-completion --out exports/sft"
  echo "  thinkforge --store $THINKFORGE_STORE export demo-rl --format verl --out exports/verl"
  echo "Swap in a real teacher (any OpenAI-compatible server; docs/generation.md, 'A real teacher'):"
  echo "  vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000"
  echo "  thinkforge --store ./teacher-store build recipes/openai-teacher.yaml"
  echo "Reports: $THINKFORGE_STORE/reports/demo-sft-train/report.html and .../demo-rl/report.html"
} >&2
