#!/usr/bin/env bash
# Set up, build the ci preset, and run every test (unit, property suites, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh ci
# Fuzz smoke (libFuzzer under ASan + UBSan, about 20 s per harness) where clang is present.
if command -v clang++-14 >/dev/null 2>&1; then
  bash scripts/fuzz.sh smoke
else
  echo "test.sh: clang++-14 not found; fuzz smoke skipped"
fi
ctest --preset ci "$@"
# The package from outside: find_package(capcheck) after an install, and add_subdirectory.
bash scripts/consumer.sh build/ci
# The Python package as a wheel, installed and run from outside the tree.
if compgen -G "build/ci/python/capcheck/_capcheck*.so" >/dev/null; then
  bash scripts/wheel.sh build/ci build/ci/dist
  # `pip install .` through the in-tree build backend, told to use build/ci as it is.
  bash scripts/wheel.sh --pip build/ci
fi
