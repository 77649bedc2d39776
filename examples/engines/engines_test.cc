// The two example runners under the installed `capcheck`, as their owner
// would run them: the correct runner passes every property at the default
// budget; each bug is found, shrunk to a minimal case, and its token
// reproduces through `capcheck reproduce <token> --plugin ...`, is refused
// under another subject, and passes with the bug switched off.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <regex>
#include <string>

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;
};

Outcome run(const std::string& command) {
  Outcome o;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return o;
  std::array<char, 4096> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe) != nullptr) o.output += chunk.data();
  const int status = ::pclose(pipe);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

Outcome capcheck(const std::string& args) {
  return run(std::string(CAPCHECK_CLI) + " " + args + " --in-flight none");
}
Outcome capcheck_plain(const std::string& args) { return run(std::string(CAPCHECK_CLI) + " " + args); }

const std::string kVllm = std::string("--plugin ") + VLLM_PLUGIN + " --subject vllm-style";
const std::string kSglang = std::string("--plugin ") + SGLANG_PLUGIN + " --subject sglang-style";

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "missing '" << (needle) << "' in:\n" << (haystack)

// The token of the report's reproduce line.
std::string token_in(const std::string& output) {
  std::smatch m;
  return std::regex_search(output, m, std::regex("reproduce: capcheck reproduce (cc2:[A-Za-z0-9_-]+)"))
             ? m[1].str()
             : "";
}

// The shrunk scenario's summary line.
std::string scenario_in(const std::string& output) {
  std::smatch m;
  return std::regex_search(output, m, std::regex("\nscenario: ([^\n]*)")) ? m[1].str() : "";
}

// A bug's token: reproduces with the plugin, is refused under another
// subject, and passes once the bug is switched off.
void expect_token_reproduces(const std::string& token, const char* plugin, const std::string& other) {
  ASSERT_FALSE(token.empty());
  const Outcome again = capcheck_plain("reproduce " + token + " --plugin " + plugin);
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_CONTAINS(again.output, "VIOLATED");
  const Outcome refused = capcheck_plain("reproduce " + token + " --plugin " + plugin + " --subject " + other);
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_CONTAINS(refused.output, "the token was written for subject");
  const Outcome fixed = capcheck_plain("reproduce " + token + " --plugin " + plugin + " --option bug=none");
  EXPECT_EQ(fixed.exit_code, 0) << fixed.output;
}

// Every property at the default budget (1000 cases each; backends_agree
// needs a second device).
void expect_every_property_holds(const std::string& subject) {
  const Outcome o = capcheck("run " + subject);
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_CONTAINS(o.output, "summary: 12 properties run, 12 passed, 0 violated");
}

TEST(VllmStyle, TheCorrectRunnerPassesEveryProperty) { expect_every_property_holds(kVllm); }

TEST(VllmStyle, SeqLensAdvancedInPlaceIsFoundAtOneRequestAndOneWarmup) {
  const Outcome o = capcheck("run " + kVllm + " --option bug=seq-lens-inplace -p capture_preserves_inputs");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_EQ(scenario_in(o.output).rfind("key=(batch_size=1, draft_len=0) warmups=1 requests: 0 context "
                                        "(0 chunked), 1 generation; tokens=1", 0), 0u)
      << o.output;
  EXPECT_CONTAINS(o.output, "first difference: seq_lens[0] expected 1, got 2");
  expect_token_reproduces(token_in(o.output), VLLM_PLUGIN, "sglang-style");
}

TEST(VllmStyle, APadSlotOfMinusOneIsFoundAtOneRealTokenAndOnePaddedRow) {
  const Outcome o = capcheck("run " + kVllm + " --option bug=pad-slot-minus-one -p first_replay_matches_eager");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  // The smallest padded batch: one real token, one padding row (a dummy or a bucket's tail).
  const std::string shrunk = scenario_in(o.output);
  EXPECT_TRUE(std::regex_search(shrunk, std::regex("^key=\\(batch_size=[12], draft_len=0\\) warmups=0 .*tokens=[23] ")))
      << o.output;
  EXPECT_CONTAINS(o.output, "first difference: logits[0, ");
  expect_token_reproduces(token_in(o.output), VLLM_PLUGIN, "trtllm");
}

TEST(VllmStyle, ATokenCountBakedAtCaptureIsFoundAtOneRequest) {
  const Outcome o = capcheck("run " + kVllm + " --option bug=baked-token-count");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "summary: 12 properties run, 11 passed, 1 violated");
  EXPECT_EQ(scenario_in(o.output).rfind("key=(batch_size=1, draft_len=0) warmups=0 ", 0), 0u) << o.output;
  EXPECT_CONTAINS(o.output, "bucket_reuse_matches_eager: VIOLATED");
  expect_token_reproduces(token_in(o.output), VLLM_PLUGIN, "trtllm-torch");
}

TEST(VllmStyle, TheEngineSimulatorFindsTheBakedCountAndPrintsATokenThatReproducesIt) {
  const Outcome clean = capcheck_plain("simulate " + kVllm + " --seed 1 --iterations 200");
  EXPECT_EQ(clean.exit_code, 0) << clean.output;
  const Outcome o = capcheck_plain("simulate " + kVllm + " --option bug=baked-token-count --seed 1 --iterations 200");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "replays_match_eager: VIOLATED");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(o.output, m, std::regex("fails on it alone\\): capcheck (reproduce [^\n]*)")))
      << o.output;
  const Outcome again = capcheck_plain(m[1].str());
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_CONTAINS(again.output, "bucket_reuse_matches_eager: VIOLATED");
}

TEST(SglangStyle, TheCorrectRunnerPassesEveryProperty) { expect_every_property_holds(kSglang); }

TEST(SglangStyle, PositionsNotResetAreFoundAtThreeRequestsInABucketOfFour) {
  const Outcome o = capcheck("run " + kSglang + " --option bug=positions-not-reset");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_CONTAINS(o.output, "summary: 12 properties run, 11 passed, 1 violated");
  EXPECT_EQ(scenario_in(o.output).rfind("key=(batch_size=3, draft_len=0) warmups=0 tokens=3 ", 0), 0u)
      << o.output;
  EXPECT_CONTAINS(o.output, "index out of range");
  expect_token_reproduces(token_in(o.output), SGLANG_PLUGIN, "vllm-style");
}

TEST(Plugins, ABuiltInScenarioTokenIsRefusedByAPluginSubject) {
  // A cc1: token names no subject and holds a TensorRT-LLM scenario.
  const Outcome o = capcheck_plain("reproduce cc1:AQIAAQEAAAABAQQBBAICAgEBAgAAAgACAQEAAPWXp8I " + kVllm);
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_CONTAINS(o.output, "does not read those");
  const Outcome unknown = capcheck_plain("run --subject vllm-style --cases 1");
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_CONTAINS(unknown.output, "--plugin PATH or CAPCHECK_PLUGIN_PATH");
  const Outcome env = run(std::string("CAPCHECK_PLUGIN_PATH=") + VLLM_PLUGIN + ":" + SGLANG_PLUGIN + " " +
                          CAPCHECK_CLI + " list");
  EXPECT_EQ(env.exit_code, 0) << env.output;
  EXPECT_CONTAINS(env.output, "vllm-style");
  EXPECT_CONTAINS(env.output, "--option bug=none|positions-not-reset");
}

// The kill matrix runs the built-in catalogue only: a plugin subject's bugs
// are --option values, and the command says so.
TEST(Engines, MutantsRefusesAPluginSubject) {
  const Outcome o = capcheck_plain("mutants " + kVllm);
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_CONTAINS(o.output, "reads neither (its variants are --option values");
}

}  // namespace
