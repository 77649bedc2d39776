// Hostile inputs and conditions: bad tokens, JSON and flags, broken regression
// files, full disks (a file-size limit), signals, closed pipes, files that are
// not capcheck's. Each case runs the CLI through bash and asserts its exit
// code, a message naming the problem, and (where data is at stake) that
// nothing was lost or clobbered. The table of docs/reproduce.md is generated
// from this table (HostileDocs.ReproduceMdTableIsCurrent fails when it is
// stale; CAPCHECK_WRITE_DOCS=1 rewrites it: scripts/doc-malformed-inputs.sh).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "capcheck/detail/files.h"
#include "capcheck/engine_run.h"
#include "capcheck/regressions.h"
#include "capcheck/token.h"

namespace capcheck {
namespace {

// A scenario violated under seed-pr, and one at the documented limits.
constexpr const char* kSeedPrToken = "cc1:AQIAAQEAAAABAQQBBAICAgEBAgAAAgACAQEAAPWXp8I";
constexpr const char* kLimitsToken = "cc1:AQAAAQAAAAABAQIBgICAAQEAAQABAAEAAAEAAHghWR8";
constexpr const char* kInputId32000Token = "cc1:AQAAAQAAAAABAQIBAgEAAQABgPQDAQAAAQAA7FuAfw";

struct Hostile {
  const char* kind;     // verdict, token, json, flag, file, regressions, disk, signal
  const char* name;     // the test's name
  const char* what;     // the input or condition, for the docs
  std::string setup;    // bash, run in $T first; must succeed
  std::string command;  // bash: $B the CLI, $T a fresh directory, $D tests/data
  int exit_code;
  std::string message;  // in the combined output
  std::string check;    // bash, run after; must succeed (nothing lost, nothing clobbered)
  // The docs show only `message` of its line (the rest depends on timing:
  // counts of an interrupted run, rates).
  bool cut = false;
};

// Payloads written by hand, framed as tokens (valid checksum), so the varint
// reader itself is what rejects them.
std::string framed(std::initializer_list<int> bytes) {
  std::string payload;
  for (int b : bytes) payload.push_back(static_cast<char>(b));
  return detail::frame_token_payload_v1(payload);
}

// A run token of one step: a request of `prompt_len` tokens.
std::string run_token_adding(std::int32_t prompt_len) {
  EngineRun run;
  run.steps = {RunStep{RunStep::Kind::kAddRequest, prompt_len, 1, 0, {}}, RunStep{}};
  return encode_run_token(run);
}

std::vector<Hostile> hostile_cases() {
  const std::string seed_pr = kSeedPrToken;
  const std::string reg = "mkdir -p $T/r && ";
  return {
      // ------------------------------------------------------------- tokens
      {"token", "NoPrefix", "not a token", "", "$B reproduce nope", 2, "must start with 'cc2:'", ""},
      {"token", "EmptyPayload", "nothing after the prefix", "", "$B reproduce cc1:", 2,
       "only 0 bytes of payload", ""},
      {"token", "Base64Length", "a base64url length that cannot be", "", "$B reproduce cc1:A", 2,
       "is not a base64url length", ""},
      {"token", "Alphabet", "a character outside base64url", "", "$B reproduce 'cc1:AA*A'", 2,
       "is not in the base64url alphabet", ""},
      {"token", "Version", "another version", "", "$B reproduce cc3:AAAA", 2,
       "version 'cc3:' is not supported", ""},
      {"token", "Truncated", "a token cut by one character", "",
       "$B reproduce " + seed_pr.substr(0, seed_pr.size() - 1), 2, "not canonical base64url", ""},
      {"token", "LastCharacter", "a last character with stray low bits", "",
       "$B reproduce " + seed_pr.substr(0, seed_pr.size() - 1) + "Z", 2, "not canonical base64url",
       ""},
      {"token", "Checksum", "a checksum that does not match", "",
       "$B reproduce cc1:" + std::string(40, 'A'), 2, "checksum mismatch", ""},
      {"token", "RedundantVarintByte", "a varint with a redundant zero byte (1 as 0x81 0x00)", "",
       "$B reproduce " + framed({0x81, 0x00}), 2, "non-canonical varint", ""},
      {"token", "VarintAbove64Bits", "a 10-byte varint for 2^64 + 1", "",
       "$B reproduce " + framed({0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}), 2,
       "a varint above 2^64 - 1", ""},
      {"token", "TrailingBytes", "a valid scenario followed by one more byte", "",
       "$B reproduce " +
           framed({1, 2, 0, 1, 1, 0, 0, 0, 1, 1, 4, 1, 4, 2, 2, 2, 1, 1, 2, 0, 0, 2, 0, 2, 1, 1, 0,
                   0, 7}),
       2, "unexpected bytes after the scenario", ""},
      {"token", "UnknownProtocolValue", "a protocol value no protocol has", "",
       "$B reproduce " + framed({1, 9}), 2, "unknown protocol value", ""},
      {"token", "RunChecksum", "a run token whose checksum does not match", "",
       "$B reproduce ccr1:" + std::string(40, 'A'), 2, "checksum mismatch", ""},
      {"token", "RunTruncated", "a run token cut by one character", "",
       "$B reproduce " + run_token_adding(4).substr(0, run_token_adding(4).size() - 1), 2,
       "invalid token", ""},
      {"token", "RunStepRefused", "a run whose request can never run (longer than max_seq_len)",
       "", "$B reproduce " + run_token_adding(100000), 2,
       "run step 0 (add_request(prompt_len=100000, max_new_tokens=1)): ", ""},
      {"token", "RunWithProperty", "--property with a run token", "",
       "$B reproduce " + run_token_adding(4) + " -p capture_preserves_inputs", 2,
       "a run token (ccr1:) replays the run's own checks", ""},
      {"token", "RunPasses", "a run token of a run that passes", "",
       "$B reproduce " + run_token_adding(4), 0, "summary: the run passed: 2 step(s), 1 iteration(s)", ""},
      {"verdict", "AgreementAfterALargeBatch",
       "backends_agree after batches up to 256, heap bytes perturbed: no verdict from stale memory",
       "", "MALLOC_PERTURB_=165 $B run --in-flight none --seed 1 --batch-size-max 256 --cases 200 "
           "-p capture_preserves_inputs -p backends_agree",
       0, "summary: 2 properties run, 2 passed, 0 violated", ""},
      {"token", "ValuesAtTheLimits", "kv_lens and position_ids at 2^20 (valid): every property",
       "", std::string("$B reproduce ") + kLimitsToken, 0,
       "properties checked, 13 passed, 0 violated", ""},
      {"token", "InputIdOfTheVocabSize", "an input id of 32000 (valid), replayed over follow-ups",
       "", std::string("$B reproduce ") + kInputId32000Token + " -p replays_match_eager", 0,
       "replays_match_eager: passed", ""},
      // --------------------------------------------------------------- json
      {"json", "Missing", "a file that does not exist", "", "$B check --scenario /nonexistent.json",
       2, "cannot read '/nonexistent.json': No such file or directory", ""},
      {"json", "Directory", "a directory", "", "$B check --scenario $T", 2,
       "is a directory, not a file", ""},
      {"json", "Endless", "an endless device", "", "$B check --scenario /dev/zero", 2,
       "holds more than the limit of 16 MiB", ""},
      {"json", "TooLarge", "a 50 MB file", "truncate -s 50M $T/big.json",
       "(ulimit -v 1000000; exec $B check --scenario $T/big.json)", 2,
       "is 52428800 bytes, above the limit of 16 MiB", ""},
      {"json", "HugeString", "a 15 MB string value (its message stays short)",
       "{ printf '{\"protocol\": \"'; head -c 15000000 /dev/zero | tr '\\0' x; printf '\"}'; } "
       "> $T/long.json",
       "$B check --scenario $T/long.json > $T/out 2>&1; code=$?; head -c 300 $T/out; exit $code",
       2, "(15000000 characters)", "test $(stat -c %s $T/out) -lt 1000"},
      {"json", "Syntax", "a syntax error", "", "$B check --scenario $D/bad_syntax.json", 2,
       "invalid scenario JSON: [json.exception.parse_error.101]", ""},
      {"json", "Empty", "an empty file", ": > $T/empty.json", "$B check --scenario $T/empty.json",
       2, "invalid scenario JSON: [json.exception.parse_error.101]", ""},
      {"json", "TopLevelArray", "an array at the top level", "printf '[1, 2]' > $T/array.json",
       "$B check --scenario $T/array.json", 2, "the top level must be an object, got array", ""},
      {"json", "UnknownField", "an unknown field", "", "$B check --scenario $D/bad_unknown_field.json",
       2, "unknown field 'warmup'", ""},
      {"json", "DuplicateKey", "a field given twice (\"protocol\")",
       "sed 's/\"protocol\": \"seed-pr\",/\"protocol\": \"seed-pr\", \"protocol\": \"reference\",/' "
       "$D/h200_seed_pr.json > $T/twice.json && test $(grep -o '\"protocol\"' $T/twice.json | wc -l) = 2",
       "$B check --scenario $T/twice.json", 2, "field 'protocol' is given twice", ""},
      {"json", "WrongType", "a string where an integer belongs",
       "sed 's/\"warmups\": [0-9]*/\"warmups\": \"two\"/' $D/h200_seed_pr.json > $T/type.json",
       "$B check --scenario $T/type.json", 2, "field 'warmups' must be an integer, got string", ""},
      {"json", "BatchSize", "batch_size not the request count", "",
       "$B check --scenario $D/bad_batch_size.json", 2,
       "batch_size: is 3 but num_contexts + num_generations = 1", ""},
      {"json", "NumberOverflow", "a number beyond double", "printf '{\"batch_size\": 1e999}' > $T/o.json",
       "$B check --scenario $T/o.json", 2, "number overflow parsing '1e999'", ""},
      {"json", "HugeInteger", "an integer beyond 32 bits", "",
       "$B check --scenario $D/bad_huge_integer.json", 2, "field 'warmups' is out of 32-bit range",
       ""},
      {"json", "DraftLoopType", "draft_loop not a boolean",
       "sed 's/\"warmups\": 2,/\"warmups\": 2, \"draft_loop\": 1,/' $D/h200_seed_pr.json > $T/dl.json",
       "$B check --scenario $T/dl.json", 2, "field 'draft_loop' must be true or false", ""},
      {"json", "FromStandardInput", "a scenario on standard input (valid; seed-pr is violated)", "",
       "$B check --scenario /dev/stdin < $D/h200_seed_pr.json", 1, "capture_preserves_inputs: VIOLATED",
       ""},
      // -------------------------------------------------------------- flags
      {"flag", "NoCommand", "no command", "", "$B ''", 2, "unknown command ''", ""},
      {"flag", "UnknownCommand", "an unknown command", "", "$B fly", 2, "unknown command 'fly'", ""},
      {"flag", "UnknownFlag", "an unknown flag", "", "$B run --frobnicate", 2,
       "The following argument was not expected: --frobnicate", ""},
      {"flag", "Protocol", "an unknown protocol", "", "$B run --protocol fixed", 2,
       "unknown protocol 'fixed'", ""},
      {"flag", "HugeProtocol", "a 100,000-character protocol (its message stays short)", "",
       "$B run --protocol $(head -c 100000 /dev/zero | tr '\\0' p) > $T/out 2>&1; code=$?; "
       "cat $T/out; exit $code",
       2, "(100000 characters)", "test $(stat -c %s $T/out) -lt 1000"},
      {"flag", "Mutant", "an unknown mutant", "", "$B run --mutant stale", 2,
       "unknown mutant 'stale'", ""},
      {"flag", "CasesZero", "--cases 0", "", "$B run --cases 0", 2,
       "--cases: must be a decimal integer from 1 to 100000000 (got '0')", ""},
      {"flag", "CasesHex", "--cases in hex", "", "$B run --cases 0x10", 2,
       "--cases: must be a decimal integer from 1 to 100000000 (got '0x10')", ""},
      {"flag", "CasesExponent", "--cases with an exponent", "", "$B run --cases 1e3", 2,
       "--cases: must be a decimal integer", ""},
      {"flag", "CasesWord", "--cases not a number", "", "$B run --cases many", 2,
       "--cases: must be a decimal integer", ""},
      {"flag", "CasesLeadingZero", "--cases 010 (decimal 10, never octal 8)", "",
       "$B run --cases 010 -p capture_preserves_inputs --in-flight none", 0, "10/10 passed", "",
       true},
      {"flag", "SeedNegative", "a negative seed", "", "$B run --seed -1", 2,
       "--seed: must be a decimal integer from 0 to 18446744073709551615 (got '-1')", ""},
      {"flag", "SeedAbove64Bits", "a seed of 2^64", "", "$B run --seed 18446744073709551616", 2,
       "(got '18446744073709551616')", ""},
      {"flag", "SeedLargest", "the largest seed (valid)", "",
       "$B run --seed 18446744073709551615 --cases 5 -p capture_preserves_inputs --in-flight none",
       0, "5/5 passed", "", true},
      {"flag", "ShrinkBudgetNegative", "a negative shrink budget", "", "$B run --shrink-budget -5",
       2, "--shrink-budget: must be a decimal integer from 0 to 100000000", ""},
      {"flag", "DraftLenMax", "--draft-len-max above the limit", "", "$B run --draft-len-max 9", 2,
       "--draft-len-max: must be a decimal integer from 0 to 8 (got '9')", ""},
      {"flag", "MaxSecondsNegative", "a negative budget", "", "$B run --max-seconds -1", 2,
       "--max-seconds: must be a number of seconds from 0 to 1e+09 (got '-1')", ""},
      {"flag", "MaxSecondsNan", "a budget of nan", "", "$B run --max-seconds nan", 2,
       "--max-seconds: must be a number of seconds from 0 to 1e+09 (got 'nan')", ""},
      {"flag", "MaxSecondsInf", "a budget of inf", "", "$B run --max-seconds inf", 2,
       "(got 'inf')", ""},
      {"flag", "CaseTimeoutNan", "a case timeout of nan", "", "$B run --case-timeout nan", 2,
       "--case-timeout: must be a number of seconds from 0 to 1e+06 (got 'nan')", ""},
      {"flag", "CaseTimeoutWord", "a case timeout not a number", "", "$B run --case-timeout x", 2,
       "--case-timeout: must be a number of seconds", ""},
      {"flag", "NoCaseRun", "a budget too small for one case", "",
       "$B run --protocol seed-pr --max-seconds 1e-300 --in-flight none", 5,
       "a property that ran no case has not passed", ""},
      {"flag", "NoCaseRunAllowed", "the same, with --allow-no-cases", "",
       "$B run --protocol seed-pr --max-seconds 1e-300 --allow-no-cases --in-flight none", 0,
       "13 ran no case", ""},
      {"flag", "Property", "an unknown property", "", "$B run --property nope", 2,
       "unknown property 'nope'", ""},
      {"flag", "Backend", "an unknown backend", "", "$B run --backend tpu", 2,
       "subject trtllm runs on sim, torch, cuda, not on 'tpu'", ""},
      {"flag", "DraftLoop", "--draft-loop neither on nor off", "", "$B run --draft-loop maybe", 2,
       "--draft-loop: must be one of on, off (got 'maybe')", ""},
      {"flag", "Capture", "an unknown capture kind", "", "$B run --capture later", 2,
       "--capture: must be one of any, startup, runtime (got 'later')", ""},
      {"flag", "SimulateCapture", "an unknown capture policy", "", "$B simulate --capture sometimes",
       2, "unknown capture policy 'sometimes'", ""},
      {"flag", "SimulateIterationsHex", "simulate --iterations in hex", "",
       "$B simulate --iterations 0x10", 2, "--iterations: must be a decimal integer", ""},
      {"flag", "ReproduceWithoutToken", "reproduce without a token", "", "$B reproduce", 2,
       "token is required", ""},
      {"flag", "CheckWithoutScenario", "check without a scenario", "", "$B check", 2,
       "--scenario is required", ""},
      // ------------------------------------------------- files not ours, outputs
      {"file", "InFlightMissingDirectory", "--in-flight in a missing directory", "",
       "$B run --in-flight /nonexistent-dir/x --cases 1", 2,
       "--in-flight: cannot create '/nonexistent-dir/x': No such file or directory", ""},
      {"file", "InFlightExistingFile", "--in-flight naming an existing file", "echo keep > $T/f",
       "$B run --in-flight $T/f --cases 1", 2,
       "capcheck never writes into a file it did not create", "test \"$(cat $T/f)\" = keep"},
      {"file", "InFlightSymlink", "--in-flight naming a symlink to a file",
       "echo keep > $T/target && ln -s $T/target $T/link", "$B run --in-flight $T/link --cases 1",
       2, "capcheck never writes into a file it did not create",
       "test \"$(cat $T/target)\" = keep && test -L $T/link"},
      {"file", "InFlightDanglingSymlink", "--in-flight naming a symlink to nothing",
       "ln -s $T/nothing $T/link", "$B run --in-flight $T/link --cases 1", 2,
       "capcheck never writes into a file it did not create", "test ! -e $T/nothing"},
      {"file", "InFlightIsJson", "--json and --in-flight the same file", "",
       "$B run --json $T/x --in-flight $T/x --cases 1", 2, "is the --in-flight file", "test ! -e $T/x"},
      {"file", "InFlightPrivate", "the default in-flight file: private, removed at exit", "",
       "$B run --cases 20 -p capture_preserves_inputs", 0,
       "in-flight token: TMP/capcheck-XXXXXX/in-flight.token", "test -z \"$(ls -A $T)\""},
      {"file", "InFlightAfterAKill", "a run killed mid-case: its in-flight file reproduces", "",
       "$B run --cases 100000000 -p capture_preserves_inputs --in-flight $T/f >/dev/null 2>&1 & "
       "pid=$!; for i in $(seq 200); do [ -s $T/f ] && break; sleep 0.05; done; sleep 0.3; "
       "kill -KILL $pid; wait $pid; $B reproduce \"$(cat $T/f)\" -p capture_preserves_inputs",
       0, "capture_preserves_inputs: passed", "test $(stat -c %s $T/f) -le 65536"},
      {"file", "JsonMissingDirectory", "--json in a missing directory", "",
       "$B run --json /nonexistent-dir/x.jsonl --cases 1", 2,
       "--json: cannot write '/nonexistent-dir/x.jsonl': No such file or directory", ""},
      {"disk", "JsonToAFullDevice", "--json to a full device", "",
       "$B run --json /dev/full --cases 5 -p capture_preserves_inputs --in-flight none", 5,
       "--json: writing '/dev/full' failed: No space left on device; the file is incomplete", ""},
      {"disk", "StdoutToAFullDevice", "standard output to a full device", "",
       "$B run --cases 5 -p capture_preserves_inputs --in-flight none > /dev/full", 5,
       "cannot write standard output: No space left on device", ""},
      {"disk", "ReproduceToAFullDevice", "reproduce's output to a full device", "",
       "$B reproduce " + seed_pr + " > /dev/full", 5,
       "cannot write standard output: No space left on device", ""},
      {"disk", "InFlightCannotBeReserved", "no space for the in-flight file (file-size limit 0)", "",
       "(ulimit -f 0; exec $B run --cases 1 -p capture_preserves_inputs)", 2,
       "--in-flight: cannot reserve space for", "test -z \"$(ls -A $T)\""},
      {"disk", "RegressionOnAFullDisk",
       "a regression appended past a file-size limit (1 KiB): nothing partial, not 'appended'",
       reg + "{ printf '# '; head -c 1000 /dev/zero | tr '\\0' k; echo; } > "
             "$T/r/capcheck-regressions.tokens && cp $T/r/capcheck-regressions.tokens $T/before",
       "(ulimit -f 1; exec $B run --protocol seed-pr -p capture_preserves_inputs --regressions $T/r "
       "--in-flight none)",
       5, "the failure was NOT saved; its token: cc2:",
       "cmp $T/before $T/r/capcheck-regressions.tokens"},
      // -------------------------------------------------------- regressions
      {"regressions", "NotADirectory", "--regressions naming nothing", "",
       "$B run --regressions $T/nope", 2, "--regressions: 'TMP/nope' is not a directory", ""},
      {"regressions", "BrokenLine", "a line that is not a token",
       reg + "printf '# a comment\\n\\ncc1:not-a-token\\n' > $T/r/broken.tokens",
       "$B run --regressions $T/r", 2, "TMP/r/broken.tokens:3: invalid token", ""},
      {"regressions", "SymlinkLoop", "an entry that is a symlink loop",
       reg + "ln -s $T/r/a $T/r/b && ln -s $T/r/b $T/r/a", "$B run --regressions $T/r", 2,
       "Too many levels of symbolic links", ""},
      {"regressions", "ReadFails", "a file whose read fails (EIO)",
       reg + "ln -s /proc/self/mem $T/r/mem.tokens", "$B run --regressions $T/r --cases 1", 2,
       "reading 'TMP/r/mem.tokens' failed: Input/output error", ""},
      {"regressions", "FileTooLarge", "a file above 64 MiB", reg + "truncate -s 65M $T/r/big.tokens",
       "$B run --regressions $T/r", 2, "above the limit of 64 MiB", ""},
      {"regressions", "TornTail", "a last line cut short by a crash: skipped, the rest replayed",
       reg + "printf '%s\\n%s' " + seed_pr + " cc1:AQIAAQEAAAAB > $T/r/x.tokens",
       "$B run --regressions $T/r --cases 5 --in-flight none", 0,
       "skipped a line cut short by an interrupted write", ""},
      {"regressions", "AppendAfterATornTail",
       "an append after a torn last line: the torn line is ended and marked, both runs work",
       reg + "printf 'cc1:AQIAAQEAAAAB' > $T/r/capcheck-regressions.tokens",
       "$B run --protocol seed-pr -p capture_preserves_inputs --regressions $T/r --in-flight none "
       ">/dev/null 2>&1; $B run --regressions $T/r --cases 5 --in-flight none",
       0, "regressions: 1 scenario(s) from TMP/r replayed first",
       "test \"$(head -1 $T/r/capcheck-regressions.tokens)\" = cc1:AQIAAQEAAAAB && "
       "grep -q 'cut short by an interrupted write' $T/r/capcheck-regressions.tokens"},
      {"regressions", "BudgetCoversRegressions",
       "100,000 regression scenarios (24 s of cases) under --max-seconds 3: the budget holds",
       reg + "yes " + std::string(kLimitsToken) + " | head -100000 > $T/r/many.tokens",
       "start=$(date +%s%N); $B run --regressions $T/r --max-seconds 3 --allow-no-cases "
       "--in-flight none; code=$?; echo \"took $((($(date +%s%N) - start) / 1000000)) ms\" > "
       "$T/took; exit $code",
       0, "(stopped by --max-seconds)",
       // All of them take about 30 s of cases (13 properties x 100,000).
       "test $(grep -o '[0-9]*' $T/took) -lt 20000", true},
      // ------------------------------------------------------------ signals
      {"signal", "Interrupt",
       "SIGINT during a failing run, stdout to a file: summary and seeds on stderr, regressions "
       "saved, no in-flight file left",
       "mkdir -p $T/r $T/tmp",
       "TMPDIR=$T/tmp $B run --protocol seed-pr --cases 100000000 --regressions $T/r > $T/out "
       "2> $T/err & pid=$!; sleep 3; kill -INT $pid; wait $pid; code=$?; cat $T/err; exit $code",
       130, "capcheck: interrupted by SIGINT",
       "grep -q 'seed [0-9]*: VIOLATED' $T/err && grep -q '^summary:' $T/out && "
       "grep -q '^cc2:' $T/r/capcheck-regressions.tokens && test -z \"$(ls -A $T/tmp)\"",
       true},
      {"signal", "ClosedPipe",
       "stdout into `head -1` (SIGPIPE): regressions saved, summary on stderr",
       "mkdir -p $T/r",
       "$B run --protocol seed-pr --regressions $T/r --in-flight none 2> $T/err | head -1 "
       ">/dev/null; code=${PIPESTATUS[0]}; cat $T/err; exit $code",
       5, "cannot write standard output",
       "grep -q 'reproduce: capcheck reproduce cc2:' $T/err && "
       "grep -q '^cc2:' $T/r/capcheck-regressions.tokens"},
  };
}

struct Outcome {
  int exit_code = -1;
  std::string output;
};

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value ? value : fallback;
}

std::string make_temp_dir() {
  std::string pattern = ::testing::TempDir() + "capcheck-hostile-XXXXXX";
  if (!::mkdtemp(pattern.data())) return "";
  return pattern;
}

// Runs `script` with bash in an environment naming $B, $T and $D.
Outcome bash(const std::string& script, const std::string& tmp) {
  const std::string command = "cd " + tmp + " && env -u XDG_RUNTIME_DIR CI=true TMPDIR=" + tmp +
                              " B='" + env_or("CAPCHECK_BIN", "capcheck") + "' T='" + tmp +
                              "' D='" + env_or("CAPCHECK_DATA", "tests/data") +
                              "' bash -c '" + std::regex_replace(script, std::regex("'"), "'\\''") +
                              "' 2>&1";
  Outcome outcome;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return outcome;
  std::array<char, 65536> chunk{};
  std::size_t n;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) {
    outcome.output.append(chunk.data(), n);
  }
  const int status = pclose(pipe);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

// What a reader sees: the paths of this machine replaced by placeholders.
std::string normalized(std::string text, const std::string& tmp) {
  auto replace_all = [&](const std::string& from, const std::string& to) {
    if (from.empty()) return;
    for (std::size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) {
      text.replace(at, from.size(), to);
    }
  };
  replace_all(tmp, "TMP");
  replace_all(env_or("CAPCHECK_DATA", "tests/data"), "tests/data");
  replace_all(env_or("CAPCHECK_BIN", "capcheck"), "capcheck");
  return std::regex_replace(text, std::regex("capcheck-[A-Za-z0-9]{6}/"), "capcheck-XXXXXX/");
}

struct Result {
  Outcome outcome;
  std::string message_line;  // the first output line with the expected message
};

// Runs one case in a fresh directory, asserting everything it promises.
Result run_case(const Hostile& c) {
  Result result;
  const std::string tmp = make_temp_dir();
  EXPECT_FALSE(tmp.empty());
  if (!c.setup.empty()) {
    const Outcome setup = bash(c.setup, tmp);
    EXPECT_EQ(setup.exit_code, 0) << "setup of " << c.name << " failed:\n" << setup.output;
  }
  result.outcome = bash(c.command, tmp);
  result.outcome.output = normalized(result.outcome.output, tmp);
  const std::string& out = result.outcome.output;
  EXPECT_EQ(result.outcome.exit_code, c.exit_code) << c.command << "\n" << out;
  // The first line with the message, preferring capcheck's own ("capcheck:
  // ..." on stderr) over a copy on stdout, whose order against stderr varies.
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const auto at = line.find(c.message);
    if (at == std::string::npos) continue;
    const std::string shown =
        !c.cut ? line
               : (at > 0 ? "... " : "") + c.message +
                     (at + c.message.size() < line.size() ? " ..." : "");
    if (result.message_line.empty() || (line.rfind("capcheck:", 0) == 0 &&
                                        result.message_line.rfind("capcheck:", 0) != 0)) {
      result.message_line = shown;
    }
  }
  EXPECT_FALSE(result.message_line.empty())
      << "missing '" << c.message << "' in the output of " << c.command << ":\n" << out;
  if (!c.check.empty()) {
    const Outcome check = bash(c.check, tmp);
    EXPECT_EQ(check.exit_code, 0) << "after " << c.name << ", the check `" << c.check
                                  << "` failed:\n" << check.output << "\noutput was:\n" << out;
  }
  const Outcome cleanup = bash("chmod -R u+w $T; rm -rf $T", tmp);
  EXPECT_EQ(cleanup.exit_code, 0) << cleanup.output;
  return result;
}

class Hostile_ : public ::testing::TestWithParam<std::size_t> {};

TEST_P(Hostile_, ExitCodeMessageAndNothingLost) {
  const Hostile c = hostile_cases()[GetParam()];
  SCOPED_TRACE(std::string(c.kind) + ": " + c.what);
  run_case(c);
}

INSTANTIATE_TEST_SUITE_P(Inputs, Hostile_,
                         ::testing::Range<std::size_t>(0, hostile_cases().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           const Hostile c = hostile_cases()[info.param];
                           std::string kind = c.kind;
                           kind[0] = static_cast<char>(std::toupper(kind[0]));
                           return kind + "_" + c.name;
                         });

TEST(HostileTable, HasAtLeastSixtyCasesWithUniqueNames) {
  const auto cases = hostile_cases();
  EXPECT_GE(cases.size(), 60u);
  std::set<std::string> names;
  for (const auto& c : cases) EXPECT_TRUE(names.insert(c.name).second) << c.name;
}

// ------------------------------------------------- concurrent appenders

// 8 processes append 200 entries of 2 KiB each to one regressions file at the
// same time; every entry must come back intact, none torn or interleaved.
TEST(HostileConcurrency, EightAppendersOfTwoHundredTwoKibEntriesLoseNothing) {
  const std::string dir = make_temp_dir();
  ASSERT_FALSE(dir.empty());
  constexpr int kWriters = 8;
  constexpr int kEntries = 200;
  const Scenario scenario = decode_token(kSeedPrToken);
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int status = 0;
      for (int e = 0; e < kEntries; ++e) {
        // A 2 KiB entry: the comment names writer and entry, padded.
        std::string comment = "writer " + std::to_string(w) + " entry " + std::to_string(e) + " ";
        comment.resize(2048 - 2 - std::string(kSeedPrToken).size() - 2, 'p');
        try {
          append_regression(dir, scenario, SubjectRef{}, comment);
        } catch (...) {
          status = 1;
        }
      }
      _exit(status);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::vector<std::string> warnings;
  const auto entries = load_regressions(dir, &warnings);
  EXPECT_TRUE(warnings.empty());
  ASSERT_EQ(entries.size(), static_cast<std::size_t>(kWriters * kEntries));
  std::set<std::string> seen;
  for (const auto& entry : entries) {
    EXPECT_EQ(entry.scenario, scenario);
    const std::regex shape(" writer ([0-9]) entry ([0-9]+) p+");
    EXPECT_TRUE(std::regex_match(entry.comment, shape)) << entry.comment.substr(0, 80);
    EXPECT_EQ(entry.comment.size(), 2048u - 2 - std::string(kSeedPrToken).size() - 2 + 1);
    seen.insert(entry.comment.substr(0, 24));
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kWriters * kEntries));
  EXPECT_EQ(std::system(("rm -rf '" + dir + "'").c_str()), 0);
}

// ------------------------------------------------------ the docs' table

constexpr const char* kTableBegin = "<!-- hostile-inputs table: generated by tests/hostile_inputs_test.cc -->";
constexpr const char* kTableEnd = "<!-- end of hostile-inputs table -->";

std::string escaped_cell(std::string text) {
  std::string out;
  for (char ch : text) {
    if (ch == '|') out += "\\|";
    else out += ch;
  }
  return out;
}

std::string display_command(std::string command) {
  for (auto [from, to] : {std::pair<std::string, std::string>{"$B", "capcheck"},
                          {"$T", "TMP"}, {"$D", "tests/data"}}) {
    for (std::size_t at = 0; (at = command.find(from, at)) != std::string::npos; at += to.size()) {
      command.replace(at, from.size(), to);
    }
  }
  if (command.size() > 160) command = command.substr(0, 157) + "...";
  return command;
}

TEST(HostileDocs, ReproduceMdTableIsCurrent) {
  std::ostringstream table;
  table << kTableBegin << "\n\n| kind | input or condition | command | exit | message |\n"
        << "|---|---|---|---|---|\n";
  for (const Hostile& c : hostile_cases()) {
    SCOPED_TRACE(c.name);
    const Result r = run_case(c);
    std::string message = r.message_line;
    if (message.size() > 220) message = message.substr(0, 217) + "...";
    table << "| " << c.kind << " | " << escaped_cell(c.what) << " | `"
          << escaped_cell(display_command(c.command)) << "` | " << r.outcome.exit_code << " | "
          << escaped_cell(message) << " |\n";
  }
  table << '\n' << kTableEnd;
  const std::string path = env_or("CAPCHECK_SOURCE", ".") + std::string("/docs/reproduce.md");
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream doc;
  doc << in.rdbuf();
  std::string text = doc.str();
  const auto begin = text.find(kTableBegin);
  const auto end = text.find(kTableEnd);
  ASSERT_NE(begin, std::string::npos) << path << " lacks the line " << kTableBegin;
  ASSERT_NE(end, std::string::npos) << path << " lacks the line " << kTableEnd;
  const std::string current = text.substr(begin, end + std::string(kTableEnd).size() - begin);
  if (std::getenv("CAPCHECK_WRITE_DOCS")) {
    text.replace(begin, current.size(), table.str());
    std::ofstream(path) << text;
    return;
  }
  EXPECT_EQ(current, table.str())
      << "docs/reproduce.md's table is stale: run scripts/doc-malformed-inputs.sh";
}

}  // namespace
}  // namespace capcheck
