#!/usr/bin/env bash
# Builds and tests the out-of-tree consumer (examples/consumer) against
# capcheck two ways: find_package(capcheck) after `cmake --install` of the
# given build tree, and add_subdirectory of this checkout, whose ctest must
# list the consumer's tests only. Where capcheck was built with LibTorch, it
# then runs docs/your-engine.md (scripts/tutorial.sh), which builds the engine
# examples (examples/engines) from the same install and runs their tests.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build/ci}"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

cmake --install "${build_dir}" --prefix "${work}/prefix" >/dev/null
cmake -S examples/consumer -B "${work}/installed" -G Ninja -DCMAKE_PREFIX_PATH="${work}/prefix" >/dev/null
cmake --build "${work}/installed" >/dev/null
ctest --test-dir "${work}/installed" --output-on-failure

cmake -S examples/consumer -B "${work}/subdir" -G Ninja -DCAPCHECK_SOURCE_DIR="$(pwd)" \
      -DCAPCHECK_ENABLE_TORCH=OFF >/dev/null
cmake --build "${work}/subdir" >/dev/null
listed="$(ctest --test-dir "${work}/subdir" -N | sed -n 's/^ *Test *#[0-9]*: //p')"
echo "consumer via add_subdirectory lists: $(echo "${listed}" | tr '\n' ' ')"
if echo "${listed}" | grep -qv '^Consumer\.'; then
  echo "consumer.sh: capcheck added tests of its own to the parent project" >&2
  exit 1
fi
ctest --test-dir "${work}/subdir" --output-on-failure
echo "consumer: find_package and add_subdirectory both pass"

if [[ -f "${work}/prefix/lib/libcapcheck_torch_plugin.a" ]]; then
  bash scripts/tutorial.sh "${work}/prefix" "${work}/tutorial"
else
  echo "consumer: capcheck was built without LibTorch; the engine examples and the tutorial are skipped"
fi
