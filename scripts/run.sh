#!/usr/bin/env bash
# The main job: set up, build, then `capcheck run` on the simulated backend.
# Arguments go to `capcheck run` (e.g. --protocol seed-pr --cases 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh dev
exec ./build/dev/src/cli/capcheck run "$@"
