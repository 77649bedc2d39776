#!/usr/bin/env bash
# Runs one libFuzzer harness for a time budget and prints a summary.
#
#   scripts/fuzz.sh [harness] [seconds] [protocol] [mutant]
#   scripts/fuzz.sh smoke        # ctest -L fuzz-smoke (about 20 s per harness)
#   scripts/fuzz.sh list         # the harnesses of fuzz/CMakeLists.txt
#
#   harness   scenario_fuzz (default) or parser_fuzz: the registry in fuzz/CMakeLists.txt
#   seconds   time budget (default 60)
#   protocol  reference (default), pre-fix, seed-pr, snapshot-restore  (scenario_fuzz only)
#   mutant    none (default) or a mutant of `capcheck list`            (scenario_fuzz only)
#
# Builds the `fuzz` preset (clang-14, libFuzzer, ASan + UBSan) into
# build/fuzz-asan when needed, then runs the harness niced, with
#   fuzz-out/corpus/<harness>/          the working corpus (kept between runs;
#                                       the seed corpus fuzz/corpus/ is read only)
#   fuzz-out/<harness>-<protocol>-<mutant>-<time>/
#       fuzz.log                        libFuzzer's output
#       crash-* leak-* timeout-* oom-*  libFuzzer's artifacts (the failing input)
#       tokens/capcheck-violation-*.token  the (shrunk) scenario token of a violation;
#                                       tokens/ is a regression directory as it is:
#                                       capcheck run --regressions fuzz-out/<run>/tokens
# Exit status: 0 no finding, 1 a finding, 2 bad usage, 3 build failure.
#
# Environment:
#   CAPCHECK_FUZZ_BUILD=dir    build directory to use instead of the preset's
#                              (e.g. build-fuzz: no sanitizers, faster)
#   CAPCHECK_FUZZ_FLAGS="..."  extra libFuzzer flags (e.g. "-jobs=2 -workers=2",
#                              "-fork=2 -ignore_crashes=1" to keep going after a finding)
#   CAPCHECK_FUZZ_NICE=n       niceness of the run (default 10)
set -euo pipefail

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root_dir}"

harness="${1:-scenario_fuzz}"
seconds="${2:-60}"
protocol="${3:-reference}"
mutant="${4:-none}"
build_dir="${CAPCHECK_FUZZ_BUILD:-build/fuzz-asan}"
niceness="${CAPCHECK_FUZZ_NICE:-10}"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# The registry: NAME, CORPUS and DICT of each capcheck_add_fuzz_harness() call.
registry() {
  awk '/^capcheck_add_fuzz_harness\(NAME/ { name = $2; sub(/^NAME /, "", name); corpus = ""; dict = ""; open = 1 }
       open && /CORPUS/ { for (i = 1; i <= NF; ++i) if ($i == "CORPUS") corpus = $(i + 1) }
       open && /DICT/   { for (i = 1; i <= NF; ++i) if ($i == "DICT") dict = $(i + 1) }
       open && /\)/     { gsub(/\)/, "", corpus); gsub(/\)/, "", dict); print name, corpus, dict; open = 0 }' \
    fuzz/CMakeLists.txt | sed 's/capcheck_add_fuzz_harness(NAME //'
}

case "${harness}" in
  -h|--help|help) usage ;;
  list) registry | awk '{ printf "%-16s corpus fuzz/%s%s\n", $1, $2, ($3 ? "  dict fuzz/" $3 : "") }'; exit 0 ;;
esac

build() {
  if ! command -v clang++-14 >/dev/null 2>&1; then
    echo "fuzz.sh: clang++-14 not found; run scripts/setup.sh (installs clang-14 and libclang-rt-14-dev)" >&2
    exit 3
  fi
  if [[ -z "${CAPCHECK_FUZZ_BUILD:-}" && ! -f "${build_dir}/CMakeCache.txt" ]]; then
    echo "fuzz.sh: configuring the fuzz preset in ${build_dir}"
    cmake --preset fuzz >/dev/null || exit 3
  fi
  echo "fuzz.sh: building $* in ${build_dir}"
  cmake --build "${build_dir}" --target "$@" -- -j"${CAPCHECK_FUZZ_BUILD_JOBS:-2}" >/dev/null ||
    { echo "fuzz.sh: build failed (rerun: cmake --build ${build_dir} --target $*)" >&2; exit 3; }
}

if [[ "${harness}" == smoke ]]; then
  # shellcheck disable=SC2046
  build $(registry | awk '{ print $1; print $1 "_replay" }')
  exec nice -n "${niceness}" ctest --test-dir "${build_dir}" -L '^fuzz' --output-on-failure
fi

entry="$(registry | awk -v h="${harness}" '$1 == h')"
if [[ -z "${entry}" ]]; then
  echo "fuzz.sh: unknown harness '${harness}'; harnesses: $(registry | awk '{ print $1 }' | xargs)" >&2
  exit 2
fi
read -r _ corpus dict <<<"${entry}"
if ! [[ "${seconds}" =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
  echo "fuzz.sh: seconds must be a positive integer, got '${seconds}'" >&2
  exit 2
fi
if [[ "${harness}" != scenario_fuzz && ( "${protocol}" != reference || "${mutant}" != none ) ]]; then
  echo "fuzz.sh: note: ${harness} ignores the protocol and mutant" >&2
fi

# The replay executable too: the summary names it for each finding.
build "${harness}" "${harness}_replay" capcheck
binary="${build_dir}/fuzz/${harness}"
cli="${build_dir}/src/cli/capcheck"

run_dir="fuzz-out/${harness}-${protocol}-${mutant}-$(date -u +%Y%m%dT%H%M%SZ)"
work_corpus="fuzz-out/corpus/${harness}"
mkdir -p "${run_dir}" "${work_corpus}"
log="${run_dir}/fuzz.log"
flags=(-max_total_time="${seconds}" -print_final_stats=1 -timeout=10 -artifact_prefix="${run_dir}/")
[[ -n "${dict}" ]] && flags+=(-dict="fuzz/${dict}")
# shellcheck disable=SC2206
flags+=(${CAPCHECK_FUZZ_FLAGS:-})

echo "fuzz.sh: ${harness} for ${seconds} s, protocol=${protocol} mutant=${mutant}; log ${log}"
start=$(date +%s)
set +e
CAPCHECK_FUZZ_PROTOCOL="${protocol}" CAPCHECK_FUZZ_MUTANT="${mutant}" CAPCHECK_FUZZ_TOKEN_DIR="${run_dir}/tokens" \
  timeout --kill-after=10 $((seconds + 120)) nice -n "${niceness}" \
  "${binary}" "${flags[@]}" "${work_corpus}" "fuzz/${corpus}" >"${log}" 2>&1
rc=$?
set -e
elapsed=$(( $(date +%s) - start ))
if grep -q "^scenario_fuzz: unknown" "${log}"; then
  sed -n 's/^scenario_fuzz: //p' "${log}" >&2
  exit 2
fi

final_stat() { sed -n "s/^stat::$1: *//p" "${log}" | tail -1; }
shopt -s nullglob
artifacts=("${run_dir}"/crash-* "${run_dir}"/leak-* "${run_dir}"/timeout-* "${run_dir}"/oom-* "${run_dir}"/slow-unit-*)
tokens=("${run_dir}"/tokens/capcheck-violation-*.token)
echo
echo "summary: ${harness} protocol=${protocol} mutant=${mutant}"
echo "  wall time        ${elapsed} s (libFuzzer exit ${rc})"
echo "  executions       $(final_stat number_of_executed_units)"
echo "  exec/s           $(final_stat average_exec_per_sec)"
echo "  new units        $(final_stat new_units_added) (working corpus: $(ls "${work_corpus}" | wc -l) files in ${work_corpus})"
echo "  coverage         $(grep -oE 'cov: [0-9]+ ft: [0-9]+' "${log}" | tail -1)"
echo "  peak rss         $(final_stat peak_rss_mb) MB"
echo "  findings         ${#artifacts[@]}"
for artifact in "${artifacts[@]}"; do
  after=$(( $(stat -c %Y "${artifact}" 2>/dev/null || date +%s) - start ))
  echo "    ${artifact} (after ~${after} s; replay: ${build_dir}/fuzz/${harness}_replay ${artifact})"
done
for token in "${tokens[@]}"; do
  echo "  token            ${token}"
  sed -n 's/^# /    # /p' "${token}"
  echo "    reproduce: ${cli} reproduce $(grep -v '^#' "${token}" | head -1)"
done
if (( ${#artifacts[@]} > 0 )); then
  grep -m1 -E "^(SUMMARY|==== )" "${log}" | sed 's/^/  first report     /'
  exit 1
fi
[[ ${rc} -eq 0 ]] || { echo "fuzz.sh: libFuzzer exited ${rc} without an artifact; see ${log}" >&2; exit 1; }
exit 0
