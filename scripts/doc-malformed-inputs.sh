#!/usr/bin/env bash
# Regenerates the hostile-inputs table of docs/reproduce.md from
# tests/hostile_inputs_test.cc: runs every case and rewrites the table between
# its markers. Usage: bash scripts/doc-malformed-inputs.sh [build directory]
# (default build/dev, which must be built).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/dev}"
test_bin="${build}/tests/hostile_inputs_test"
if [[ ! -x "${test_bin}" ]]; then
  echo "doc-malformed-inputs: ${test_bin} is not built (cmake --build --preset dev)" >&2
  exit 2
fi
CAPCHECK_WRITE_DOCS=1 CI=true "${test_bin}" --gtest_filter='HostileDocs.*'
git diff --stat -- docs/reproduce.md
