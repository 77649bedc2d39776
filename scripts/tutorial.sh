#!/usr/bin/env bash
# Runs docs/your-engine.md: every line of its ```sh blocks, in order, in one
# shell, with PREFIX (an installed capcheck, its bin/ on PATH) and WORK (a
# scratch directory) set. A line ending in `# exits N` must exit with N,
# any other with 0. Each line of a ```text block (cut at "...") must occur
# in the output of the sh line before it. Each line of a ```cpp or ```cmake
# block must occur verbatim in examples/engines/. Usage:
#   scripts/tutorial.sh PREFIX WORK
set -uo pipefail
cd "$(dirname "$0")/.."
doc="${TUTORIAL_DOC:-docs/your-engine.md}"
export PREFIX="$1" WORK="$2"
export PATH="${PREFIX}/bin:${PATH}"
mkdir -p "${WORK}"
log="${WORK}/.tutorial-line.log"
failures=0 ran=0 block="" last_output=""
fail() { echo "tutorial: FAIL: $*" >&2; failures=$((failures + 1)); }

while IFS= read -r line || [[ -n "${line}" ]]; do
  if [[ -z "${block}" ]]; then
    [[ "${line}" =~ ^\`\`\`([a-z]+)$ ]] && block="${BASH_REMATCH[1]}"
    [[ "${line}" == '```' ]] && block="other"
    continue
  fi
  if [[ "${line}" == '```' ]]; then block=""; continue; fi
  case "${block}" in
    sh)
      [[ -z "${line// }" || "${line}" =~ ^[[:space:]]*# ]] && continue
      expected=0
      [[ "${line}" =~ \#\ exits\ ([0-9]+)$ ]] && expected="${BASH_REMATCH[1]}"
      ran=$((ran + 1))
      eval "${line}" > "${log}" 2>&1
      status=$?
      last_output="$(cat "${log}")"
      if [[ "${status}" != "${expected}" ]]; then
        fail "exit ${status} (expected ${expected}): ${line}"
        tail -20 "${log}" >&2
      else
        echo "tutorial: ok (exit ${status}): ${line}"
      fi
      ;;
    text)
      [[ -z "${line// }" ]] && continue
      want="${line%%...*}"
      grep -qF -- "${want}" <<< "${last_output}" || fail "output line not produced: ${want}"
      ;;
    cpp|cmake)
      want="$(sed 's/^[[:space:]]*//' <<< "${line}")"
      [[ -z "${want}" ]] && continue
      grep -rqF -- "${want}" examples/engines || fail "not in examples/engines: ${want}"
      ;;
  esac
done < "${doc}"

if (( failures > 0 )); then
  echo "tutorial: ${failures} failure(s) in ${doc}" >&2
  exit 1
fi
echo "tutorial: ${ran} commands of ${doc} ran as documented"
