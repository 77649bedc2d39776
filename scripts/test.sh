#!/usr/bin/env bash
# Set up, build the ci preset, and run every test (unit, property suites, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh ci
ctest --preset ci "$@"
