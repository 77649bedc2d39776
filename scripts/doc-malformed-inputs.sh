#!/usr/bin/env bash
# Regenerates the malformed-input table of docs/reproduce.md: runs the CLI on
# each bad input and prints "| input | exit | message |" rows (first line of
# the message). Usage: bash scripts/doc-malformed-inputs.sh [path/to/capcheck]
set -uo pipefail
cd "$(dirname "$0")/.."
cli="${1:-build/dev/src/cli/capcheck}"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
data=tests/data
good=$("${cli}" run --protocol seed-pr --seed 1 -p capture_preserves_inputs --in-flight none |
       grep -m1 -o 'cc1:[A-Za-z0-9_-]*')
mkdir -p "${tmp}/regressions"
printf '# a comment\n\ncc1:not-a-token\n' >"${tmp}/regressions/broken.tokens"
printf '{"batch_size": 1e999}\n' >"${tmp}/overflow.json"
printf '[1, 2]\n' >"${tmp}/array.json"
sed 's/"draft_len": 0/"draft_len": 1/' "${data}/bad_unknown_field.json" | sed 's/"warmup"/"warmups"/' >"${tmp}/seq.json"

row() {
  local label="$1"
  shift
  local output code
  output="$("${cli}" "$@" 2>&1 >/dev/null | head -1)"
  "${cli}" "$@" >/dev/null 2>&1
  code=$?
  printf '| %s | `capcheck %s` | %s | %s |\n' "${label}" "$*" "${code}" "${output//|/\\|}"
}

echo "| kind | command | exit | message |"
echo "|---|---|---|---|"
row token reproduce nope
row token reproduce cc1:
row token reproduce cc1:A
row token reproduce 'cc1:AA*A'
row token reproduce cc2:AAAA
row token reproduce "${good%?}"
row token reproduce "${good%?}Z"
row token reproduce "cc1:$(printf 'A%.0s' $(seq 1 40))"
row json check --scenario /nonexistent.json
row json check --scenario "${data}/bad_syntax.json"
row json check --scenario "${tmp}/array.json"
row json check --scenario "${data}/bad_unknown_field.json"
row json check --scenario "${data}/bad_batch_size.json"
row json check --scenario "${tmp}/overflow.json"
row json check --scenario "${data}/bad_huge_integer.json"
row json check --scenario "${tmp}/seq.json"
row flag ""
row flag fly
row flag run --protocol fixed
row flag run --mutant stale
row flag run --cases 0
row flag run --seed -1
row flag run --shrink-budget -5
row flag run --in-flight /nonexistent-dir/x --cases 1
row flag run --property nope
row flag run --backend tpu
row flag run --draft-loop maybe
row flag run --capture later
row flag run --max-seconds -1
row flag run --json /nonexistent-dir/x.jsonl --cases 1
row flag simulate --capture sometimes
row regressions run --regressions "${tmp}/nope"
row regressions run --regressions "${tmp}/regressions"
