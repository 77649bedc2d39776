// End-to-end: the capcheck CLI as a subprocess, matching output and exit codes.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "capcheck/registry.h"
#include "capcheck/token.h"

namespace capcheck {
namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

Outcome capcheck(const std::string& arguments) {
  const char* bin = std::getenv("CAPCHECK_BIN");
  EXPECT_NE(bin, nullptr) << "CAPCHECK_BIN is set by ctest";
  const std::string command = std::string(bin ? bin : "capcheck") + " " + arguments + " 2>&1";
  Outcome outcome;
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::array<char, 4096> chunk{};
  std::size_t n;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) outcome.output.append(chunk.data(), n);
  const int status = pclose(pipe);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

std::string data(const std::string& name) {
  const char* dir = std::getenv("CAPCHECK_DATA");
  return std::string(dir ? dir : ".") + "/" + name;
}

bool torch_built() {
  for (const auto& b : list_backends()) {
    if (b.name == "torch") return b.built;
  }
  return false;
}

std::string token_in(const std::string& output) {
  std::smatch match;
  if (std::regex_search(output, match, std::regex("reproduce: capcheck reproduce (cc2:[A-Za-z0-9_-]+)"))) {
    return match[1];
  }
  return "";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "missing '" << (needle) << "' in:\n" << (haystack)

TEST(Cli, ReferencePassesEveryPropertyAtAThousandCases) {
  const Outcome o = capcheck("run --protocol reference --cases 1000 --seed 3");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  for (const char* property :
       {"capture_preserves_inputs", "first_replay_matches_eager", "warmup_count_invariant",
        "postprocess_inverts_preprocess", "replays_match_eager", "bucket_reuse_matches_eager",
        "padding_is_inert", "static_inputs_fully_copied"}) {
    EXPECT_TRUE(std::regex_search(o.output, std::regex(std::string(property) +
                                                       " +3 +1000/1000 passed")))
        << property << "\n" << o.output;
  }
  EXPECT_TRUE(std::regex_search(o.output, std::regex("summary: (12|13) properties run, \\1 passed, 0 violated")))
      << o.output;
}

// The LibTorch runner on the capture emulator: the op-level minimum, shapes in
// the report, the op that last wrote the element, a reproduce line naming the subject.
TEST(Cli, TheLibTorchSubjectIsViolatedUnderSeedPrAndReproducesByItsToken) {
  if (!torch_built()) GTEST_SKIP() << "LibTorch not built";
  const Outcome o = capcheck("run --subject trtllm-torch --protocol seed-pr --seed 5 --cases 300 "
                             "-p capture_preserves_inputs -p first_replay_matches_eager");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "capcheck run: subject=trtllm-torch backend=emulator");
  EXPECT_CONTAINS(o.output, "first difference: static_position_ids[0, 0] expected 0, got -1");
  EXPECT_CONTAINS(o.output, "last write to static_position_ids[0, 0]: aten::sub_.Tensor during "
                            "postprocess after capture");
  EXPECT_CONTAINS(o.output, "first difference: logits[0, 6] expected 1, got 2");
  const std::string token = token_in(o.output);
  ASSERT_FALSE(token.empty()) << o.output;
  EXPECT_EQ(decode_subject_token(token).subject.name, "trtllm-torch") << "the token names its subject";
  const Outcome op_level = capcheck("run --protocol seed-pr --seed 5 --cases 300 -p capture_preserves_inputs");
  EXPECT_EQ(decode_token(token_in(op_level.output)), decode_token(token))
      << "the two subjects shrank to different scenarios";
  const Outcome other = capcheck("reproduce " + token + " --subject trtllm");
  EXPECT_EQ(other.exit_code, 2) << other.output;
  EXPECT_CONTAINS(other.output, "written for subject trtllm-torch, not for --subject trtllm");
  const Outcome again = capcheck("reproduce " + token + " --subject trtllm-torch");
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_CONTAINS(again.output, "subject: trtllm-torch");

  const Outcome wrong = capcheck("run --subject trtllm-torch --backend sim --cases 1");
  EXPECT_EQ(wrong.exit_code, 2) << wrong.output;
  EXPECT_CONTAINS(wrong.output, "runs on emulator, cuda, not on 'sim'");
  const Outcome unknown = capcheck("run --subject nope --cases 1");
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_CONTAINS(unknown.output, "trtllm-torch");
}

TEST(Cli, SeedPrIsViolatedWithAMinimalScenarioAndAReproduceLine) {
  const Outcome o = capcheck("run --protocol seed-pr --draft-loop off --seed 5");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_TRUE(std::regex_search(o.output, std::regex("capture_preserves_inputs +5 +[0-9]+/1000 VIOLATED")))
      << o.output;
  EXPECT_CONTAINS(o.output,
                  "scenario: key=(batch_size=1, draft_len=1) warmups=0 protocol=seed-pr requests: 0 "
                  "context (0 chunked), 1 generation");
  EXPECT_CONTAINS(o.output, "previous_pos_id_offsets=[1,1] previous_kv_lens_offsets=[-1]");
  EXPECT_CONTAINS(o.output, "first difference: static_position_ids[0] expected 0, got -1");
  EXPECT_TRUE(std::regex_search(o.output, std::regex("summary: (12|13) properties run, [78] passed, 5 violated")))
      << o.output;
  const std::string token = token_in(o.output);
  ASSERT_FALSE(token.empty()) << o.output;

  const Outcome again = capcheck("reproduce " + token + " --property capture_preserves_inputs");
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_CONTAINS(again.output, "capture_preserves_inputs: VIOLATED");
  EXPECT_CONTAINS(again.output, "reproduce: capcheck reproduce " + token);
  if (torch_built()) {
    const Outcome on_torch = capcheck("reproduce " + token + " --backend torch");
    EXPECT_EQ(on_torch.exit_code, 1) << on_torch.output;
    EXPECT_CONTAINS(on_torch.output, "backend: torch");
    EXPECT_CONTAINS(on_torch.output, "capture_preserves_inputs: VIOLATED");
    EXPECT_CONTAINS(on_torch.output, "first_replay_matches_eager: VIOLATED");
    EXPECT_CONTAINS(on_torch.output, "--backend torch");
  }
}

TEST(Cli, PreFixShrinksToOneWarmup) {
  const Outcome o = capcheck("run --protocol pre-fix --property capture_preserves_inputs --seed 9");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "key=(batch_size=1, draft_len=1) warmups=1 protocol=pre-fix");
}

TEST(Cli, DraftLoopBreaksSeedPrEvenAtStartupCapture) {
  const Outcome o = capcheck("run --protocol seed-pr --capture startup --seed 2 "
                             "--property capture_preserves_inputs");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "warmups=1 protocol=seed-pr draft_loop=on accepted=[0]");
  EXPECT_CONTAINS(o.output, "previous_pos_id_offsets=[0,0] previous_kv_lens_offsets=[0]");
  EXPECT_CONTAINS(o.output, "first difference: kv_lens_cuda[0] expected 2, got 1");
  const Outcome off = capcheck("run --protocol seed-pr --capture startup --draft-loop off --seed 2 "
                               "--property capture_preserves_inputs");
  EXPECT_EQ(off.exit_code, 0) << off.output;
}

TEST(Cli, CheckReproducesTheH200Measurement) {
  const Outcome o = capcheck("check --scenario " + data("h200_seed_pr.json"));
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "kv_lens=[10,20,30,40]");
  EXPECT_CONTAINS(o.output, "changed by capture: static_position_ids (6 elements), kv_lens_cuda (3 elements)");
  EXPECT_CONTAINS(o.output, "eager computed token 4 with input_id=201 position_id=19 kv_len=23");
  EXPECT_CONTAINS(o.output, "replay computed token 4 with input_id=201 position_id=19 kv_len=20");
}

// --dump lines capcheck up with an engine's logs: the H200 measurement's
// kv_lens after capture, what the replay and the eager forward computed with.
TEST(Cli, CheckDumpShowsTheBuffersAfterEachPhase) {
  const Outcome o = capcheck("check --scenario " + data("h200_seed_pr.json") +
                             " --dump -p first_replay_matches_eager");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  const auto after_capture = o.output.find("after postprocess after capture:\n");
  ASSERT_NE(after_capture, std::string::npos) << o.output;
  EXPECT_EQ(o.output.find("kv_lens_cuda               [10,17,27,37] then 60 zeros", after_capture),
            o.output.find("kv_lens_cuda", after_capture))
      << o.output;
  EXPECT_CONTAINS(o.output, "the model step of 'capture forward (recorded)' (replayed from the graph) "
                            "computed with:\n    input_ids    [101,102,103,104,201,202,301,302,401,402]\n"
                            "    position_ids [6,7,8,9,19,20,29,30,39,40]\n"
                            "    seq_ids      [0,0,0,0,1,1,2,2,3,3]\n"
                            "    kv_lens      [10,20,30,40] then 60 zeros");
  EXPECT_CONTAINS(o.output, "the model step of 'eager model' (executed eagerly) computed with:");
  EXPECT_CONTAINS(o.output, "    kv_lens      [10,23,33,43] then 60 zeros");
  EXPECT_CONTAINS(o.output, "first_replay_matches_eager: VIOLATED");
  const Outcome torch = capcheck("check --scenario " + data("h200_seed_pr.json") +
                                 " --dump --subject trtllm-torch");
  if (torch_built()) {
    EXPECT_EQ(torch.exit_code, 2) << torch.output;
    EXPECT_CONTAINS(torch.output, "--dump prints the buffers of an op-level subject");
  }
}

// The note names the kv_len the forward read, not the value the draft loop
// left after it (step 0 adds 1 to the context row, subtracts the rejected
// draft token from each generation row).
TEST(Cli, ComputedWithNoteShowsTheKvLenBeforeTheDraftLoopMovedIt) {
  Scenario s;  // tests/data/h200_seed_pr.json with the draft loop, nothing accepted
  s.protocol = Protocol::kSeedPr;
  s.key = {4, 1};
  s.warmups_count = 2;
  s.num_contexts = 1;
  s.num_generations = 3;
  s.seq_lens = {4, 2, 2, 2};
  s.kv_lens = {10, 20, 30, 40};
  s.previous_pos_id_offsets = {1, 1, 1, 1, 1, 1};
  s.previous_kv_lens_offsets = {3, 3, 3};
  s.input_ids = {101, 102, 103, 104, 201, 202, 301, 302, 401, 402};
  s.position_ids = {6, 7, 8, 9, 18, 19, 28, 29, 38, 39};
  s.draft_loop = true;
  s.num_accepted_tokens = {0, 0, 0};
  const Outcome o = capcheck("reproduce " + encode_token(s) + " --property first_replay_matches_eager");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  // Two warmups moved the context row's kv_len from 10 to 12; the replay reads 12.
  EXPECT_CONTAINS(o.output, "eager computed token 0 with input_id=101 position_id=6 kv_len=10 ");
  EXPECT_CONTAINS(o.output, "replay computed token 0 with input_id=101 position_id=6 kv_len=12 ");
}

TEST(Cli, ReproduceOfAPassingScenarioExitsZeroAndPrintsJson) {
  Scenario s;  // one generation request, reference protocol
  s.key.draft_len = 1;
  s.seq_lens = {2};
  s.kv_lens = {7};
  s.previous_pos_id_offsets = {2, 2};
  s.previous_kv_lens_offsets = {-1};
  s.input_ids = {5, 6};
  s.position_ids = {5, 6};
  const Outcome o = capcheck("reproduce " + encode_token(s) + " --print-json");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_CONTAINS(o.output, "\"protocol\": \"reference\"");
  EXPECT_TRUE(std::regex_search(o.output, std::regex("summary: (12|13) properties checked, \\1 passed, 0 violated")))
      << o.output;
}

TEST(Cli, CanaryMustFail) {
  const Outcome o = capcheck("run --property canary_forward_never_changes_kv_lens --seed 1 --cases 200");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "VIOLATED");
}

TEST(Cli, CiModeDerivesSeedsFromPropertyNames) {
  const Outcome a = capcheck("run --cases 50 --property capture_preserves_inputs");
  const Outcome b = capcheck("run --cases 50 --property capture_preserves_inputs");
  EXPECT_EQ(a.exit_code, 0) << a.output;
  if (std::getenv("CI") && std::string(std::getenv("CI")) == "true") {
    EXPECT_CONTAINS(a.output, "derived from property names (CI=true)");
    EXPECT_EQ(a.output.substr(0, a.output.find("summary")).size(),
              b.output.substr(0, b.output.find("summary")).size());
  }
}

TEST(Cli, ListShowsBackendsProtocolsAndProperties) {
  const Outcome o = capcheck("list");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_CONTAINS(o.output, "sim      available");
  EXPECT_CONTAINS(o.output, "snapshot-restore");
  EXPECT_CONTAINS(o.output, "chunked-branch-asymmetry");
  EXPECT_CONTAINS(o.output, "canary_forward_never_changes_kv_lens");
}


// Bad inputs and hostile conditions: tests/hostile_inputs_test.cc.

std::string regressions_dir() {
  const char* dir = std::getenv("CAPCHECK_REGRESSIONS");
  return dir ? dir : "tests/regressions";
}

std::string temp_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "capcheck-e2e-" + name + "-" + std::to_string(getpid());
  std::string command = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  EXPECT_EQ(std::system(command.c_str()), 0);
  return dir;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The kill matrix: no defect of the catalogue survives the default budget and
// the reference protocol violates nothing.
TEST(Cli, MutantsMatrixHasNoSurvivor) {
  const Outcome o = capcheck("mutants");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_CONTAINS(o.output, "0 survived, 0 false alarm(s)");
  EXPECT_EQ(o.output.find("SURVIVED"), std::string::npos) << o.output;
  // Each defect's shrunk counterexample comes with a token that reproduces it.
  std::smatch match;
  ASSERT_TRUE(std::regex_search(
      o.output, match,
      std::regex("on  mutant replay-without-prepare +replays_match_eager: [^\n]*\n +reproduce: "
                 "capcheck reproduce (cc2:[A-Za-z0-9_-]+)")))
      << o.output;
  const Outcome again = capcheck("reproduce " + match[1].str() + " --property replays_match_eager");
  EXPECT_EQ(again.exit_code, 1) << again.output;
}

// With two properties only, padded-rows-not-inert (killed by padding_is_inert
// and bucket_reuse_matches_eager alone), stale-offsets,
// cache-key-without-draft-len, capture-override-leaks, offset-misalignment,
// host-value-baked, realloc-after-capture and pool-output-alias (both killed by
// graph_outputs_survive_other_replays alone) survive: exit 1, counted in --json.
TEST(Cli, MutantsJsonCountsASurvivor) {
  const Outcome o = capcheck("mutants --json --cases 50 --property capture_preserves_inputs "
                             "--property replays_match_eager");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "\"mutant\": \"replay-without-prepare\"");
  EXPECT_CONTAINS(o.output, "\"survivors\": 8");
  EXPECT_CONTAINS(o.output, "\"shrunk\": {");
  const Outcome text = capcheck("mutants --cases 50 --property capture_preserves_inputs "
                                "--property replays_match_eager");
  EXPECT_EQ(text.exit_code, 1) << text.output;
  for (const std::string mutant : {"padded-rows-not-inert", "stale-offsets", "cache-key-without-draft-len",
                                   "capture-override-leaks", "offset-misalignment", "host-value-baked",
                                   "realloc-after-capture", "pool-output-alias"}) {
    EXPECT_TRUE(std::regex_search(text.output, std::regex("mutant " + mutant + " +\\. +\\.  SURVIVED")))
        << mutant << "\n" << text.output;
  }
}

// docs/properties.md's matrix is the command's current output.
TEST(Cli, PropertiesMdMatrixIsCurrent) {
  const std::string begin = "<!-- kill matrix: generated by `capcheck mutants --markdown` -->";
  const std::string end = "<!-- end of kill matrix -->";
  const Outcome o = capcheck("mutants --markdown");
  ASSERT_EQ(o.exit_code, 0) << o.output;
  const char* source = std::getenv("CAPCHECK_SOURCE");
  const std::string path = std::string(source ? source : ".") + "/docs/properties.md";
  std::string text = read_text(path);
  const auto from = text.find(begin);
  const auto to = text.find(end);
  ASSERT_NE(from, std::string::npos) << path << " lacks the line " << begin;
  ASSERT_NE(to, std::string::npos) << path << " lacks the line " << end;
  const std::string current = text.substr(from, to + end.size() - from);
  const std::string generated = begin + "\n\n" + o.output + "\n" + end;
  if (std::getenv("CAPCHECK_WRITE_DOCS")) {
    text.replace(from, current.size(), generated);
    std::ofstream(path) << text;
    return;
  }
  EXPECT_EQ(current, generated) << "docs/properties.md's kill matrix is stale: run "
                                   "CAPCHECK_WRITE_DOCS=1 ctest -R PropertiesMdMatrixIsCurrent";
}

// --shard I/N: the parts together run exactly the cases of one run, with the
// same verdicts (every case's property, origin, status and token): passing
// properties over two batches each, failing ones (found and shrunk in their
// first batch) over one. (A property that fails in batch k stops there in one
// run, while the shards owning its later batches still run them.)
std::vector<std::string> case_records(const std::string& jsonl) {
  std::vector<std::string> records;
  std::istringstream lines(jsonl);
  const std::regex field("\"(origin|property|status|token)\":\"([^\"]*)\"");
  for (std::string line; std::getline(lines, line);) {
    std::string record;
    for (auto it = std::sregex_iterator(line.begin(), line.end(), field); it != std::sregex_iterator(); ++it) {
      record += (*it)[2].str() + " ";
    }
    records.push_back(record);
  }
  std::sort(records.begin(), records.end());
  return records;
}

TEST(Cli, ShardsTogetherRunExactlyTheCasesOfOneRun) {
  const std::string dir = temp_dir("shard");
  for (const std::string protocol : {"reference", "seed-pr"}) {
    const std::string cases = protocol == "reference" ? "1500" : "1000";
    const std::string run = "run --protocol " + protocol + " --seed 4 --cases " + cases +
                            " --in-flight none -p capture_preserves_inputs -p replays_match_eager "
                            "-p padding_is_inert";
    const Outcome whole = capcheck(run + " --json " + dir + "/whole.jsonl");
    std::vector<std::string> parts;
    for (int i = 1; i <= 3; ++i) {
      const Outcome part = capcheck(run + " --shard " + std::to_string(i) + "/3 --json " + dir +
                                    "/part.jsonl");
      EXPECT_EQ(part.exit_code, whole.exit_code == 1 && part.output.find("VIOLATED") == std::string::npos
                                    ? 0 : whole.exit_code)
          << part.output;
      EXPECT_CONTAINS(part.output, "shard " + std::to_string(i) + "/3");
      const auto records = case_records(read_text(dir + "/part.jsonl"));
      parts.insert(parts.end(), records.begin(), records.end());
    }
    std::sort(parts.begin(), parts.end());
    const auto expected = case_records(read_text(dir + "/whole.jsonl"));
    EXPECT_GE(expected.size(), protocol == "reference" ? 4500u : 1000u) << protocol;
    EXPECT_EQ(parts, expected) << protocol;
  }
  const Outcome random = capcheck("run --shard 1/2 --in-flight none");
  if (!(std::getenv("CI") && std::string(std::getenv("CI")) == "true")) {
    EXPECT_EQ(random.exit_code, 2) << random.output;
    EXPECT_CONTAINS(random.output, "--shard needs the same seeds in every part");
  }
  EXPECT_EQ(capcheck("run --shard 3/2").exit_code, 2);
  EXPECT_EQ(capcheck("run --shard 1/0").exit_code, 2);
  EXPECT_EQ(capcheck("run --shard x").exit_code, 2);
}

// The report without what depends on time or on the process count: the
// property table's time and rate columns, the jobs lines, the in-flight path.
std::string without_times(const std::string& output) {
  std::istringstream in(output);
  std::string line, out;
  const std::regex row("^([a-z_]+ +[0-9]+ +[0-9]+/[0-9]+ +[A-Za-z ]+?) +[0-9.]+ +[0-9]+(.*)$");
  while (std::getline(in, line)) {
    if (line.rfind("jobs:", 0) == 0) continue;
    out += std::regex_replace(line, row, "$1$2") + '\n';
  }
  return out;
}

// --jobs N: the same table, failures, shrunk scenarios and tokens as one
// process, for every N, also within a --shard part and with a regression
// directory; refused where it cannot hold.
TEST(Cli, JobsGiveTheResultsOfOneProcess) {
  const std::string dir = temp_dir("jobs");
  for (const std::string protocol : {"reference", "seed-pr"}) {
    // The project's regressions under the reference protocol (which appends nothing to them).
    const std::string run = "run --protocol " + protocol + " --seed 4 --cases 2500 --in-flight none " +
                            "-p capture_preserves_inputs -p replays_match_eager -p padding_is_inert" +
                            (protocol == "reference" ? " --regressions " + regressions_dir() : "");
    const Outcome one = capcheck(run);
    for (const std::string jobs : {"2", "3"}) {
      const Outcome many = capcheck(run + " --jobs " + jobs);
      EXPECT_EQ(many.exit_code, one.exit_code) << many.output;
      EXPECT_CONTAINS(many.output, "jobs: " + jobs + " worker processes");
      EXPECT_EQ(without_times(many.output), without_times(one.output)) << protocol << " --jobs " << jobs;
    }
    const Outcome part = capcheck(run + " --shard 2/3");
    const Outcome part_jobs = capcheck(run + " --shard 2/3 --jobs 2");
    EXPECT_EQ(without_times(part_jobs.output), without_times(part.output)) << protocol;
  }
  const Outcome json = capcheck("run --jobs 2 --json " + dir + "/cases.jsonl");
  EXPECT_EQ(json.exit_code, 2) << json.output;
  EXPECT_CONTAINS(json.output, "with --jobs each worker has its own");
  EXPECT_EQ(capcheck("run --jobs 0").exit_code, 2);
}

// Note [lockstep]: with one seed the properties check each scenario in turn
// (sharing its capture); --json keeps them one after another. The same table,
// failures and tokens either way.
TEST(Cli, LockstepGivesTheResultsOfOnePropertyAfterAnother) {
  const std::string dir = temp_dir("lockstep");
  for (const std::string protocol : {"reference", "seed-pr"}) {
    const std::string run = "run --protocol " + protocol + " --seed 6 --cases 1500 --in-flight none " +
                            "-p capture_preserves_inputs -p first_replay_matches_eager "
                            "-p replays_match_eager";
    const Outcome together = capcheck(run);
    const Outcome apart = capcheck(run + " --json " + dir + "/" + protocol + ".jsonl");
    EXPECT_EQ(together.exit_code, protocol == "reference" ? 0 : 1) << together.output;
    EXPECT_EQ(apart.exit_code, together.exit_code) << apart.output;
    EXPECT_EQ(without_times(together.output), without_times(apart.output)) << protocol;
  }
}

// check --json FILE: the scenario, the verdicts and the --dump as one JSON
// document, the same values the text shows, full length (no "then N zeros").
TEST(Cli, CheckJsonCarriesTheVerdictsAndTheDump) {
  const std::string dir = temp_dir("check-json");
  const Outcome o = capcheck("check --scenario " + data("h200_seed_pr.json") +
                             " --dump -p first_replay_matches_eager --json " + dir + "/check.json");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  const nlohmann::json doc = nlohmann::json::parse(read_text(dir + "/check.json"));
  EXPECT_EQ(doc["subject"], "trtllm");
  EXPECT_EQ(doc["scenario"]["kv_lens"], nlohmann::json({10, 20, 30, 40}));
  ASSERT_EQ(doc["verdicts"].size(), 1u);
  EXPECT_EQ(doc["verdicts"][0]["property"], "first_replay_matches_eager");
  EXPECT_EQ(doc["verdicts"][0]["passed"], false);
  EXPECT_EQ(doc["verdicts"][0]["mismatch"]["buffer"], "logits");
  EXPECT_NE(doc["verdicts"][0]["reproduce"].get<std::string>().find("capcheck reproduce cc2:"),
            std::string::npos);
  std::vector<std::int64_t> after_capture, replay_read;
  for (const auto& e : doc["dump"]) {
    if (e.contains("after") && e["after"] == "postprocess after capture") {
      for (const auto& b : e["buffers"]) {
        if (b["name"] == "kv_lens_cuda") after_capture = b["values"].get<std::vector<std::int64_t>>();
      }
    }
    if (e.contains("run") && e["run"] == "the replay") {
      replay_read = e["model_steps"][0]["kv_lens"].get<std::vector<std::int64_t>>();
    }
  }
  ASSERT_EQ(after_capture.size(), 64u);  // the whole buffer
  EXPECT_EQ(std::vector<std::int64_t>(after_capture.begin(), after_capture.begin() + 4),
            (std::vector<std::int64_t>{10, 17, 27, 37}));
  ASSERT_GE(replay_read.size(), 4u);
  EXPECT_EQ(std::vector<std::int64_t>(replay_read.begin(), replay_read.begin() + 4),
            (std::vector<std::int64_t>{10, 20, 30, 40}));
  // A file that cannot be written is an output failure, not a crash or a lie.
  const Outcome unwritable = capcheck("check --scenario " + data("h200_seed_pr.json") +
                                      " --json /nonexistent-dir/check.json");
  EXPECT_EQ(unwritable.exit_code, 5) << unwritable.output;
  EXPECT_CONTAINS(unwritable.output, "--json: cannot create");
}

TEST(Cli, RegressionsAreReplayedFirstUnderTheRunsProtocol) {
  const Outcome ok = capcheck("run --regressions " + regressions_dir() + " --cases 50 --seed 1");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_CONTAINS(ok.output, "regressions: 5 scenario(s) from");
  EXPECT_CONTAINS(ok.output, "(+5 regressions)");
  const Outcome bad =
      capcheck("run --regressions " + regressions_dir() + " --cases 1 --seed 1 --protocol seed-pr");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_CONTAINS(bad.output, "capture_preserves_inputs violated (seed 1, found by regression");
}

TEST(Cli, NewFailuresAreAppendedToTheRegressionDirectory) {
  const std::string dir = temp_dir("append");
  const Outcome o = capcheck("run --protocol seed-pr --draft-loop off --seed 1 --regressions " +
                             dir + " -p capture_preserves_inputs");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  const std::string token = token_in(o.output);
  const std::string file = read_text(dir + "/capcheck-regressions.tokens");
  EXPECT_CONTAINS(file, "# capture_preserves_inputs protocol=seed-pr mutant=none subject=trtllm found ");
  EXPECT_CONTAINS(file, token + "\n");
  // Replayed first on the next run, and not appended twice.
  const Outcome again = capcheck("run --protocol seed-pr --seed 1 --regressions " + dir +
                                 " -p capture_preserves_inputs");
  EXPECT_CONTAINS(again.output, "found by regression");
  EXPECT_EQ(read_text(dir + "/capcheck-regressions.tokens"), file);
}

TEST(Cli, FailureOutputHasARegressionTestDraft) {
  const Outcome o = capcheck("run --protocol seed-pr --seed 1 -p first_replay_matches_eager");
  EXPECT_CONTAINS(o.output, "regression draft (a line for `capcheck run --regressions DIR`):");
  EXPECT_CONTAINS(o.output, "TEST(Regression, first_replay_matches_eager_");
  EXPECT_CONTAINS(o.output, "capcheck::decode_token(\"" + token_in(o.output) + "\")");
}

TEST(Cli, BadRegressionFileNamesFileAndLine) {
  const std::string dir = temp_dir("bad-regression");
  std::ofstream(dir + "/broken.tokens") << "# a comment\n\ncc1:not-a-token\n";
  const Outcome o = capcheck("run --regressions " + dir);
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_CONTAINS(o.output, "broken.tokens:3: invalid token");
  const Outcome missing = capcheck("run --regressions " + dir + "/nope");
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_CONTAINS(missing.output, "is not a directory");
}

TEST(Cli, JsonLinesHaveOneRecordPerCase) {
  const std::string dir = temp_dir("json");
  const Outcome o = capcheck("run --cases 40 --seed 2 -p capture_preserves_inputs --json " + dir +
                             "/cases.jsonl");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  const std::string text = read_text(dir + "/cases.jsonl");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 40);
  EXPECT_CONTAINS(text, "\"origin\":\"generate\"");
  EXPECT_CONTAINS(text, "\"status\":\"passed\"");
  EXPECT_CONTAINS(text, "\"token\":\"cc2:");
}

TEST(Cli, MaxSecondsStopsALongRun) {
  const Outcome o = capcheck("run --cases 100000000 --max-seconds 1 -p capture_preserves_inputs");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_CONTAINS(o.output, "(stopped by --max-seconds)");
}

TEST(Cli, ShrinkBudgetBoundsShrinking) {
  const Outcome o = capcheck("run --protocol seed-pr --seed 1 --shrink-budget 0 -p capture_preserves_inputs");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "stopped by --shrink-budget");
}

TEST(Cli, AKilledRunLeavesTheInFlightToken) {
  const std::string dir = temp_dir("in-flight");
  const std::string file = dir + "/case.token";
  const char* bin = std::getenv("CAPCHECK_BIN");
  ASSERT_NE(bin, nullptr);
  // Killed mid-run, as by a crash: once the run has written its first token
  // (a loaded machine may take seconds to get there), never after a fixed time.
  const std::string command = std::string(bin) + " run --cases 100000000 --in-flight " + file +
                              " >/dev/null 2>&1 & pid=$!; for i in $(seq 600); do [ -s " + file +
                              " ] && break; sleep 0.1; done; sleep 0.3; kill -KILL $pid; wait $pid";
  std::system(command.c_str());
  // The token, then newline padding: "$(cat FILE)" is exactly the token.
  std::string token = read_text(file);
  token.erase(token.find_last_not_of('\n') + 1);
  EXPECT_EQ(token.find_first_of(" \n"), std::string::npos) << "in-flight file: '" << token << "'";
  ASSERT_EQ(token.rfind("cc2:", 0), 0u) << "in-flight file: '" << token << "'";
  const Outcome o = capcheck("reproduce " + token);
  EXPECT_EQ(o.exit_code, 0) << o.output;
}

TEST(Cli, AHungCaseIsReportedWithItsToken) {
  // A timeout far below one case's run time: the watchdog (polling every
  // 100 ms) finds a case in flight and reports it as a hang.
  const Outcome o = capcheck("run --cases 100000000 --case-timeout 0.000000001 --in-flight none");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "ran longer than --case-timeout");
  EXPECT_CONTAINS(o.output, "reproduce: capcheck reproduce cc2:");
}

// The op that last wrote a changed element is named with the phase it ran in:
// under the chunked-branch mutant the postprocess skips the chunked rows, so
// the preprocess's add is the last write (not "prepare").
TEST(Cli, TheLastWriteNoteNamesThePreprocessPhase) {
  const Outcome o = capcheck("run --mutant chunked-branch-asymmetry -p postprocess_inverts_preprocess --seed 1");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "]: preprocess: add kv_lens_cuda[");
}

TEST(Cli, SimulateIsDeterministicAndCatchesSeedPrAtALazyCapture) {
  const Outcome a = capcheck("simulate --seed 11 --iterations 150");
  const Outcome b = capcheck("simulate --seed 11 --iterations 150");
  EXPECT_EQ(a.exit_code, 0) << a.output;
  EXPECT_CONTAINS(a.output, "every capture preserved its inputs and every graph iteration matched eager");
  std::smatch hash;
  ASSERT_TRUE(std::regex_search(a.output, hash, std::regex("final state hash: [0-9a-f]{16}")));
  EXPECT_EQ(a.output, b.output);  // the same seed gives the same run, line for line
  const Outcome bug = capcheck("simulate --seed 11 --iterations 150 --protocol seed-pr --draft-loop off");
  EXPECT_EQ(bug.exit_code, 1) << bug.output;
  EXPECT_CONTAINS(bug.output, "-> capture key=");
  EXPECT_CONTAINS(bug.output, "VIOLATED");
  EXPECT_CONTAINS(bug.output, "failing capture as a scenario: key=");
  EXPECT_CONTAINS(bug.output, "fails on it alone): capcheck reproduce cc2:");
  EXPECT_CONTAINS(bug.output, "reproduce the run: capcheck reproduce ccr1:");
  EXPECT_CONTAINS(bug.output, "replay the whole simulation: capcheck simulate --seed 11 --iterations 150");
  const Outcome hidden =
      capcheck("simulate --seed 11 --iterations 150 --protocol seed-pr --draft-loop off --capture startup-only");
  EXPECT_EQ(hidden.exit_code, 0) << hidden.output;
  const Outcome bad = capcheck("simulate --capture sometimes");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_CONTAINS(bad.output, "sometimes");
}

std::string line_after(const std::string& output, const std::string& prefix) {
  const auto at = output.find(prefix);
  if (at == std::string::npos) return "";
  return output.substr(at + prefix.size(), output.find('\n', at) - at - prefix.size());
}

// A simulation's failure is a run: its token reproduces the same failing
// step from a fresh engine, is kept in a regression directory and replayed
// by `run --regressions`, and a damaged one is a usage error.
TEST(Cli, SimulateRunTokenReproducesTheFailingStep) {
  const Outcome bug = capcheck("simulate --seed 11 --iterations 150 --protocol seed-pr --draft-loop off");
  ASSERT_EQ(bug.exit_code, 1) << bug.output;
  const std::string label = line_after(bug.output, "failing step: ");
  EXPECT_CONTAINS(label, "(capture of key (");
  const std::string command = line_after(bug.output, "reproduce the run: capcheck reproduce ");
  ASSERT_EQ(command.rfind("ccr1:", 0), 0u) << bug.output;
  const Outcome again = capcheck("reproduce " + command);
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_EQ(line_after(again.output, "failing step: "), label) << again.output;
  EXPECT_CONTAINS(again.output, "capture_preserves_inputs: VIOLATED");

  const std::string dir = temp_dir("run-regression");
  {
    std::ofstream file(dir + "/runs.tokens");
    file << "# seed-pr at a lazy capture, found by simulate\n" << command << '\n';
  }
  const Outcome replayed = capcheck("run --regressions " + dir + " --cases 10 -p capture_preserves_inputs --seed 1");
  EXPECT_EQ(replayed.exit_code, 1) << replayed.output;
  EXPECT_CONTAINS(replayed.output, "regressions: 1 engine run(s) from " + dir + " replayed first\n");
  EXPECT_CONTAINS(replayed.output, "runs.tokens:2 failed (seed-pr at a lazy capture, found by simulate): " + label);
  EXPECT_CONTAINS(replayed.output, "1 of 1 regression run(s) failed");

  std::string damaged = command;
  damaged[12] = damaged[12] == 'A' ? 'B' : 'A';
  const Outcome bad = capcheck("reproduce " + damaged);
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_CONTAINS(bad.output, "invalid token: checksum mismatch");
  const Outcome dump = capcheck("reproduce " + command + " --dump");
  EXPECT_EQ(dump.exit_code, 2) << dump.output;
}

// An illegal call of the subject during a run (a graph's buffer freed by a
// later batch: capture rule 5) is the failing step's verdict, shrunk and
// reproduced like any other, not a backend failure that ends the simulation.
TEST(Cli, SimulateReportsADanglingBufferAsTheFailingStep) {
  const Outcome bug = capcheck("simulate --seed 3 --iterations 300 --mutant realloc-after-capture");
  ASSERT_EQ(bug.exit_code, 1) << bug.output;
  EXPECT_CONTAINS(bug.output, "buffer 'kv_lens_cuda' was freed or reallocated");
  const std::string label = line_after(bug.output, "failing step: ");
  EXPECT_CONTAINS(label, "(replay of key (");
  const std::string command = line_after(bug.output, "reproduce the run: capcheck reproduce ");
  const Outcome again = capcheck("reproduce " + command);
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_EQ(line_after(again.output, "failing step: "), label) << again.output;
}

// A mutant the subject does not implement is refused wherever it can be
// named, rather than run as a mutant that changes nothing.
TEST(Cli, AMutantTheSubjectDoesNotImplementIsRefused) {
  for (const std::string command : {"run --cases 5", "simulate --iterations 5"}) {
    const Outcome o = capcheck(command + " --subject trtllm-torch --mutant realloc-after-capture");
    EXPECT_EQ(o.exit_code, 2) << command << "\n" << o.output;
    EXPECT_CONTAINS(o.output, "subject trtllm-torch does not implement mutant realloc-after-capture");
  }
  const Outcome list = capcheck("list");
  EXPECT_CONTAINS(list.output, "mutants not implemented: realloc-after-capture");
}

TEST(Cli, UnbuiltBackendIsABackendFailure) {
  for (const auto& b : list_backends()) {
    if (b.built) continue;
    const Outcome o = capcheck("run --cases 1 --backend " + b.name);
    EXPECT_EQ(o.exit_code, 3) << o.output;
    EXPECT_CONTAINS(o.output, "backend failure");
  }
}

}  // namespace
}  // namespace capcheck
