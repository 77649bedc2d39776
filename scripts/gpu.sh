#!/usr/bin/env bash
# Builds and runs the GPU suites on a GPU machine, from the repository root:
#   1. configure with CUDA (and LibTorch from the installed PyTorch wheel when
#      it is usable), with capcheck's C++ dependencies from .deps/ (prepared on
#      a networked machine by scripts/gpu-deps.sh);
#   2. build everything with ninja;
#   3. ctest -L gpu (the conformance suite's Cuda and TorchCuda instances, the
#      cuda backend test and the torch backend's CUDA tests);
#   4. the whole torch backend test (CPU and CUDA), when LibTorch was built;
#   5. the GPU benchmark (median of repetitions);
#   6. `capcheck run --backend cuda` and `--backend torch` (on CUDA) for every
#      protocol, and seed-pr tokens found on sim reproduced on cuda and torch
#      and the other way round;
#   7. `capcheck run --property backends_agree` on cuda (compared with sim and
#      torch) for every protocol;
#   8. compute-sanitizer memcheck, racecheck, initcheck and synccheck on the
#      cuda backend test and the conformance suite's Cuda instances, and
#      memcheck on the torch backend's CUDA tests (its own and the conformance
#      suite's TorchCuda instances).
# Logs go to $OUT when it is set, otherwise out/gpu/; summary.txt lists every
# step with its exit status. Exits non-zero when any step failed.
#
# Environment:
#   CAPCHECK_GPU_TORCH=auto|ON|OFF   LibTorch backend (auto: ON when torch imports)
#   CAPCHECK_GPU_BUILD=dir           build directory (default build-gpu)
#   CAPCHECK_GPU_STEPS="..."         subset of: build test torch bench cli agree sanitize
#                                    (default all)
#   CAPCHECK_GPU_CASES=N             cases per property for `capcheck run` (default 1000)
#   CAPCHECK_GPU_AGREE_CASES=N       cases per protocol for backends_agree (default 2000)
#   CAPCHECK_GPU_SANITIZERS="..."    compute-sanitizer tools on the cuda backend test
#                                    (default: memcheck racecheck initcheck synccheck)
set -uo pipefail

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root_dir}"
out_dir="${OUT:-${root_dir}/out/gpu}"
mkdir -p "${out_dir}"
build_dir="${CAPCHECK_GPU_BUILD:-build-gpu}"
torch_mode="${CAPCHECK_GPU_TORCH:-auto}"
steps="${CAPCHECK_GPU_STEPS:-build test torch bench cli agree sanitize}"
cases="${CAPCHECK_GPU_CASES:-1000}"
agree_cases="${CAPCHECK_GPU_AGREE_CASES:-2000}"
sanitizers="${CAPCHECK_GPU_SANITIZERS:-memcheck racecheck initcheck synccheck}"
summary="${out_dir}/summary.txt"
: >"${summary}"
failed=0

note() { echo "$*" | tee -a "${summary}"; }
want() { [[ " ${steps} " == *" $1 "* ]]; }

# step NAME LOG TIMEOUT_S COMMAND...: runs COMMAND, appends its output to LOG.
step() {
  local name="$1" log="$2" limit="$3"
  shift 3
  local start=${SECONDS}
  echo "=== ${name}: $*" >>"${log}"
  timeout --kill-after=10 "${limit}" "$@" >>"${log}" 2>&1
  local rc=$?
  note "$(printf '%-40s rc=%-3s %4ss  (%s)' "${name}" "${rc}" "$((SECONDS - start))" "$(basename "${log}")")"
  [[ ${rc} -eq 0 ]] || failed=1
  return ${rc}
}

deps="${root_dir}/.deps/root/usr"
if [[ ! -d "${deps}" ]]; then
  echo "gpu.sh: ${deps} is missing: run scripts/gpu-deps.sh on a Debian 12 machine with apt and copy .deps into this repository (docs/gpu.md)" >&2
  exit 2
fi
export PATH="/usr/local/cuda/bin:${PATH}"
export CI=true  # deterministic seeds, derived from property names

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  nvcc --version | tail -2
  echo "cmake: $(cmake --version | head -1)   ninja: $(ninja --version)   c++: $(c++ --version | head -1)"
  echo "cores: $(nproc)"
} >"${out_dir}/device.txt" 2>&1
cat "${out_dir}/device.txt"

prefix="${deps};${deps}/lib/x86_64-linux-gnu/cmake;${deps}/share"
torch_flag=OFF
if [[ "${torch_mode}" != OFF ]]; then
  torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)"
  if [[ -n "${torch_prefix}" ]]; then
    prefix="${prefix};${torch_prefix}"
    torch_flag=ON
  elif [[ "${torch_mode}" == ON ]]; then
    note "torch: python3 cannot import torch, but CAPCHECK_GPU_TORCH=ON"
    exit 2
  fi
fi

# configure_command TORCH: the cmake command line, in the array `cmake_args`.
configure_command() {
  cmake_args=(cmake -S . -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    -DCAPCHECK_ENABLE_CUDA=ON -DCAPCHECK_ENABLE_TORCH="$1"
    -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DCMAKE_PREFIX_PATH="${prefix}")
}

if want build; then
  configure_command "${torch_flag}"
  if ! step "configure (torch ${torch_flag})" "${out_dir}/build.log" 300 "${cmake_args[@]}"; then
    if [[ "${torch_flag}" == ON && "${torch_mode}" == auto ]]; then
      # LibTorch from the wheel did not configure: keep the CUDA backend going.
      rm -rf "${build_dir}"
      torch_flag=OFF
      failed=0
      configure_command OFF
      step "configure (torch OFF, after torch failed)" "${out_dir}/build.log" 300 "${cmake_args[@]}"
    fi
  fi
  # -k 0: one target that fails to compile does not hide the others' results.
  step "build" "${out_dir}/build.log" 1200 ninja -C "${build_dir}" -k 0
fi

bin="${build_dir}"
torch_test="${bin}/tests/torch_backend_test"
backends="sim cuda"
if [[ -x "${torch_test}" ]]; then
  backends+=" torch"
fi
if want test; then
  step "ctest -L gpu" "${out_dir}/test.log" 600 \
    ctest --test-dir "${build_dir}" -L gpu --output-on-failure
fi

if want torch; then
  if [[ -x "${torch_test}" ]]; then
    # CPU and CUDA halves of one binary (what LibTorch and CUDA answer to the
    # illegal calls is printed by the conformance suite, in test.log).
    step "torch_backend_test (CPU and CUDA)" "${out_dir}/torch.log" 600 "${torch_test}"
    grep -E "^torch backend: |^\[  (PASSED|SKIPPED|FAILED)  \]" "${out_dir}/torch.log" |
      sed "s/^/  /" | tee -a "${summary}"
  else
    note "torch_backend_test: not built (no LibTorch)"
  fi
fi

if want bench; then
  step "gpu_bench (median of 5)" "${out_dir}/bench.log" 600 \
    "${bin}/gpu_bench" --benchmark_repetitions=5 --benchmark_min_time=0.5 \
    --benchmark_report_aggregates_only=true --benchmark_counters_tabular=true
fi

if want cli; then
  cli="${bin}/src/cli/capcheck"
  cli_log="${out_dir}/cli.log"
  step "capcheck list" "${cli_log}" 60 "${cli}" list
  for protocol in reference pre-fix seed-pr snapshot-restore; do
    for backend in ${backends}; do
      # Violations exit 1 by design (pre-fix, seed-pr); only 2+ is a failure here.
      step "capcheck run ${backend} ${protocol}" "${cli_log}" 300 \
        bash -c "'${cli}' run --backend ${backend} --protocol ${protocol} --cases ${cases}; rc=\$?; [[ \$rc -le 1 ]]"
    done
  done
  # A seed-pr counterexample found on sim reproduces on cuda and torch, and
  # one found on either reproduces on sim.
  pairs=("sim cuda" "cuda sim")
  [[ " ${backends} " == *" torch "* ]] && pairs+=("sim torch" "torch sim")
  for pair in "${pairs[@]}"; do
    set -- ${pair}
    token="$(CI=true "${cli}" run --backend "$1" --protocol seed-pr --cases "${cases}" \
      --property first_replay_matches_eager 2>/dev/null | sed -n 's/^reproduce: capcheck reproduce \(cc1:[^ ]*\).*/\1/p' | head -1)"
    if [[ -n "${token}" ]]; then
      step "reproduce $1 token on $2" "${cli_log}" 60 \
        bash -c "'${cli}' reproduce '${token}' --backend $2 --property first_replay_matches_eager; [[ \$? -eq 1 ]]"
    else
      note "reproduce $1 token on $2: no token found"
      failed=1
    fi
  done
fi

if want agree; then
  cli="${bin}/src/cli/capcheck"
  if "${cli}" list 2>/dev/null | grep -q backends_agree; then
    # cuda against every other available backend (sim, and torch on CUDA).
    for protocol in reference pre-fix seed-pr snapshot-restore; do
      step "backends_agree cuda ${protocol} (${agree_cases})" "${out_dir}/agree.log" 600 \
        "${cli}" run --backend cuda --property backends_agree --cases "${agree_cases}" \
        --protocol "${protocol}"
    done
  else
    note "backends_agree: not in this build (capcheck list)"
  fi
fi

if want sanitize; then
  san_log="${out_dir}/sanitizer.log"
  test_bin="${bin}/cuda_backend_test"
  conformance_bin="${bin}/tests/backend_conformance_test"
  # These conformance tests make CUDA refuse calls on purpose (a
  # synchronization during capture, capture on the legacy stream): the
  # driver's refusal is what they check. compute-sanitizer counts every failed
  # API call as an error, so they run apart, with API errors listed but not counted.
  provoking="*Conformance.DownloadDuringCapture*/Cuda:*Conformance.UploadSynchronizeAllocateAndFreeDuringCapture*/Cuda"
  provoking+=":*Conformance.CaptureOnTheLegacyStream*/Cuda:*Conformance.RecordedOps*/Cuda"
  provoking+=":*Conformance.ErrorsPointAt*/Cuda"
  # Fewer property scenarios under the sanitizers: every API call is intercepted.
  for tool in ${sanitizers}; do
    step "compute-sanitizer ${tool}" "${san_log}" 300 \
      env CAPCHECK_CUDA_TEST_SCENARIOS=40 compute-sanitizer --tool "${tool}" --error-exitcode 1 \
      --print-limit 50 "${test_bin}"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "${san_log}" | tail -1 | sed "s/^/  ${tool}: /" | tee -a "${summary}"
    step "compute-sanitizer ${tool} (conformance)" "${san_log}" 300 \
      compute-sanitizer --tool "${tool}" --error-exitcode 1 --print-limit 50 \
      "${conformance_bin}" --gtest_filter="*/Cuda-${provoking}"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "${san_log}" | tail -1 | sed "s/^/  ${tool} (conformance): /" | tee -a "${summary}"
  done
  step "compute-sanitizer memcheck (refused calls, memory errors only)" "${san_log}" 120 \
    compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 1 \
    "${conformance_bin}" --gtest_filter="${provoking}"
  grep -E "ERROR SUMMARY" "${san_log}" | tail -1 | sed "s/^/  memcheck (refused calls): /" | tee -a "${summary}"
  # The refused calls themselves, for the record: only 900/901 are expected.
  compute-sanitizer --tool memcheck --report-api-errors explicit "${conformance_bin}" \
    --gtest_filter="${provoking}" >"${out_dir}/sanitizer-api.log" 2>&1
  grep -o "Program hit [a-zA-Z]* (error [0-9]*)[^.]*on CUDA API call to [a-zA-Z]*" \
    "${out_dir}/sanitizer-api.log" | sort | uniq -c | sed "s/^/  api: /" | tee -a "${summary}"
  if [[ -x "${torch_test}" ]]; then
    # The torch backend refuses illegal calls on the host (Note [capture state
    # on the host, torch]), so no CUDA call fails on purpose: API errors count.
    step "compute-sanitizer memcheck (torch CUDA tests)" "${san_log}" 300 \
      env CAPCHECK_TORCH_TEST_SCENARIOS=8 compute-sanitizer --tool memcheck --error-exitcode 1 \
      --print-limit 50 "${torch_test}" --gtest_filter="*TorchCuda*"
    grep -E "ERROR SUMMARY" "${san_log}" | tail -1 | sed "s/^/  memcheck (torch): /" | tee -a "${summary}"
    step "compute-sanitizer memcheck (conformance, torch CUDA)" "${san_log}" 300 \
      compute-sanitizer --tool memcheck --error-exitcode 1 --print-limit 50 \
      "${conformance_bin}" --gtest_filter="*/TorchCuda"
    grep -E "ERROR SUMMARY" "${san_log}" | tail -1 | sed "s/^/  memcheck (conformance, torch): /" | tee -a "${summary}"
    grep -o "Program hit [a-zA-Z]* (error [0-9]*)[^.]*on CUDA API call to [a-zA-Z]*" "${san_log}" |
      sort | uniq -c | sed "s/^/  api (torch, all sanitizer runs): /" | tee -a "${summary}"
  fi
fi

note "overall: $([[ ${failed} -eq 0 ]] && echo passed || echo FAILED)"
exit ${failed}
