#!/usr/bin/env bash
# Configures and builds one CMake preset (default: dev) after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-dev}"
bash scripts/setup.sh
# nvcc lives outside the default PATH on Debian's CUDA installs.
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
