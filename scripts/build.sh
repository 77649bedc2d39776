#!/usr/bin/env bash
# Configures and builds one CMake preset (default: dev) after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-dev}"
bash scripts/setup.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
