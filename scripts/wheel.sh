#!/usr/bin/env bash
# Makes a wheel of the Python package from a configured and built tree, and
# checks it from outside the tree:
#   bash scripts/wheel.sh [BUILD_DIR (default build/dev)] [OUT_DIR (default dist)]
# installs the "python" component into a staging directory, zips it as
# capcheck-VERSION-TAG.whl (the interpreter's tag; the module is built for that
# Python and that torch), then pip-installs it into a scratch directory and
# runs a property there, with neither the source nor the build tree on the path.
# `python3 -m pip install dist/capcheck-*.whl` installs it for real.
#
#   bash scripts/wheel.sh --pip [BUILD_DIR]
# checks `pip install .` instead: pip installs the checkout into a scratch
# directory through its build backend (pyproject.toml), told to use BUILD_DIR
# as it is (`--config-settings build-dir=BUILD_DIR`: nothing is configured
# there, and only the module's targets are built, which is nothing to do in a
# built tree), once with pip's build isolation and once with
# --no-build-isolation, and each install is checked the same way.
set -euo pipefail
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pip_mode=0
if [[ "${1:-}" == --pip ]]; then
  pip_mode=1
  shift
fi
build_dir="$(cd "${1:-${root_dir}/build/dev}" && pwd)"
out_dir="${2:-${root_dir}/dist}"
cache="${build_dir}/CMakeCache.txt"
python="$(sed -n 's/^CAPCHECK_PYTHON_MODULE_PYTHON:[A-Z]*=//p' "${cache}" 2>/dev/null || true)"
if [[ -z "${python}" ]] || ! compgen -G "${build_dir}/python/capcheck/_capcheck*.so" >/dev/null; then
  echo "wheel.sh: ${build_dir} has no Python module (configure with -DCAPCHECK_ENABLE_PYTHON=ON)" >&2
  exit 2
fi
scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT

# check_site SITE: the package installed in SITE imports and runs, from a
# directory outside the source and build trees.
check_site() (
  cd "${scratch}"
  env -u PYTHONPATH PYTHONPATH="$1" CI=true "${python}" -c '
import capcheck, os, sys
assert os.path.dirname(capcheck.__file__).startswith(sys.argv[1]), capcheck.__file__
capcheck.check("trtllm-torch", ["capture_preserves_inputs"], cases=50)
r = capcheck.run("trtllm-torch", ["capture_preserves_inputs"], protocol="seed-pr", cases=50)
assert r.code == 1, r.output
print("wheel.sh: the installed package runs (reference passes, seed-pr found)")
' "$1"
  env -u PYTHONPATH PYTHONPATH="$1" CI=true "${python}" -m capcheck run \
    --plugin "${root_dir}/python/tests/trtllm_runner.py" --subject py-trtllm --cases 50 \
    -p first_replay_matches_eager >/dev/null
  echo "wheel.sh: python3 -m capcheck runs a .py plugin from the installed package"
)

if [[ ${pip_mode} == 1 ]]; then
  for mode in isolated no-isolation; do
    flags=()
    [[ ${mode} == no-isolation ]] && flags=(--no-build-isolation)
    log="${scratch}/pip-${mode}.log"
    if ! env -u PYTHONPATH "${python}" -m pip install -v --root-user-action=ignore --no-deps \
        --no-index "${flags[@]}" --target "${scratch}/pip-${mode}" \
        --config-settings build-dir="${build_dir}" "${root_dir}" >"${log}" 2>&1; then
      cat "${log}" >&2
      echo "wheel.sh: pip install (${mode}) of ${root_dir} failed" >&2
      exit 1
    fi
    echo "wheel.sh: pip install (${mode}) of the checkout:$(sed -n 's/.*capcheck build: wrote/ wrote/p' "${log}")"
    check_site "${scratch}/pip-${mode}"
  done
  exit 0
fi

version="$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "${cache}")"
cmake --install "${build_dir}" --component python --strip --prefix "${scratch}/stage" >/dev/null
mkdir -p "${out_dir}"
wheel="$("${python}" "${root_dir}/python/make_wheel.py" "${scratch}/stage" "${version}" "${out_dir}")"
echo "wheel.sh: ${wheel}"
# From outside: install into a scratch directory, run a property from there.
"${python}" -m pip install --quiet --root-user-action=ignore --no-deps --no-index --target "${scratch}/site" "${wheel}"
check_site "${scratch}/site"
