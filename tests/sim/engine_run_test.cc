// A run of the engine simulator as a value (capcheck/engine_run.h): its
// token round-trips and refuses damage, a recorded run replays to the same
// failing step, the shrinker keeps the failure while removing what it does
// not need, and a run's token does not depend on the scenario generator.
#include <gtest/gtest.h>

#include <string>

#include "capcheck/engine_commands.h"
#include "capcheck/engine_run.h"
#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "capcheck/sim_backend.h"
#include "capcheck/trtllm_subject.h"

namespace capcheck {
namespace {

SubjectsFactory op_level() {
  return [] { return std::make_unique<Harness>(make_sim_backend(), make_trtllm_subject); };
}

// The stateful suite's engine, lazy capture, no draft loop.
sim::EngineConfig small_engine(Protocol protocol, Mutant mutant = Mutant::kNone) {
  sim::EngineConfig c = stateful_engine_config(protocol, sim::CapturePolicy::kLazy, false, 0);
  c.mutant = mutant;
  return c;
}

// The loop of `capcheck simulate`, recorded: arrivals from a seed, one
// iteration per step, until the first failure or `iterations`.
EngineRun record(const sim::EngineConfig& config, std::uint64_t seed, int iterations,
                 int* failed_at = nullptr) {
  EngineRunner runner(op_level()(), config);
  RunRecorder recorder(SubjectRef{}, config);
  EXPECT_TRUE(runner.start().empty());
  std::uint64_t x = seed;
  for (int i = 0; i < iterations; ++i) {
    x = sim::splitmix64(x);
    if (x % 3 == 0) {
      const auto prompt = 1 + static_cast<std::int32_t>((x >> 8) % 48);
      const auto max_new = 1 + static_cast<std::int32_t>((x >> 20) % 16);
      runner.engine().add_request(prompt, max_new);
      recorder.add_request(prompt, max_new);
    }
    const auto outcome = runner.step();
    recorder.iterate(outcome ? &outcome->iteration : nullptr);
    if (outcome && !outcome->failures.empty()) {
      if (failed_at) *failed_at = static_cast<int>(recorder.run().steps.size()) - 1;
      break;
    }
  }
  return recorder.run();
}

int count(const EngineRun& run, RunStep::Kind kind) {
  int n = 0;
  for (const RunStep& s : run.steps) n += s.kind == kind;
  return n;
}

TEST(EngineRun, TokenRoundTripsEveryFieldAndStepKind) {
  EngineRun run;
  run.subject = SubjectRef{"vllm-style", {{"bug", "pad-slot"}}};
  run.config = small_engine(Protocol::kSeedPr, Mutant::kStaleOffsets);
  run.config.cuda_graph_batch_sizes = {1, 2, 4, 8};
  run.config.acceptance_seed = 0xfedcba9876543210ull;
  run.config.overlap_scheduler = false;
  run.config.capture = sim::CapturePolicy::kStartupOnly;
  RunStep add{RunStep::Kind::kAddRequest, 17, 5, 0, {}};
  RunStep it{RunStep::Kind::kIterate, 0, 0, 0, {2, 0, 1}};
  RunStep finish{RunStep::Kind::kFinishRequest, 0, 0, 3, {}};
  RunStep clear{RunStep::Kind::kClearGraphs, 0, 0, 0, {}};
  run.steps = {add, it, finish, clear, RunStep{}};
  const std::string token = encode_run_token(run);
  ASSERT_EQ(token.rfind("ccr1:", 0), 0u) << token;
  EXPECT_TRUE(is_run_token(token));
  const EngineRun back = decode_run_token(token);
  EXPECT_EQ(back.subject, run.subject);
  EXPECT_EQ(back.steps, run.steps);
  EXPECT_EQ(back.config.cuda_graph_batch_sizes, run.config.cuda_graph_batch_sizes);
  EXPECT_EQ(back.config.acceptance_seed, run.config.acceptance_seed);
  EXPECT_EQ(back.config.capture, run.config.capture);
  EXPECT_EQ(back.config.mutant, run.config.mutant);
  EXPECT_FALSE(back.config.overlap_scheduler);
  EXPECT_EQ(encode_run_token(back), token);  // one spelling per run
  EXPECT_EQ(run_token_subject(token), run.subject);
}

TEST(EngineRun, DamagedTokensAreRefusedNamingWhatIsWrong) {
  EngineRun run;
  run.config = small_engine(Protocol::kReference);
  run.steps = {RunStep{RunStep::Kind::kAddRequest, 3, 2, 0, {}}, RunStep{}};
  const std::string token = encode_run_token(run);
  auto refused = [](const std::string& text, const std::string& words) {
    try {
      decode_run_token(text);
      ADD_FAILURE() << "accepted " << text;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  refused(token.substr(0, token.size() - 3), "");
  std::string altered = token;
  altered[10] = altered[10] == 'A' ? 'B' : 'A';
  refused(altered, "checksum");
  refused("cc2:" + token.substr(5), "must start with 'ccr1:'");
  refused(token + "!", "base64url");
  // A configuration the simulator refuses is named like a field.
  run.config.max_num_tokens = 1;  // below 1 + draft_len
  EXPECT_THROW(encode_run_token(run), UsageError);
}

TEST(EngineRun, AcceptedCountsAreTheRunsNotTheModels) {
  // The same steps under two acceptance seeds replay the same offsets: the
  // counts come from the run.
  EngineRun a;
  a.config = small_engine(Protocol::kReference);
  a.steps = {RunStep{RunStep::Kind::kAddRequest, 2, 8, 0, {}}};
  for (int i = 0; i < 6; ++i) a.steps.push_back(RunStep{RunStep::Kind::kIterate, 0, 0, 0, {2}});
  EngineRun b = a;
  b.config.acceptance_seed = 99;
  const RunOutcome ra = replay_run(a, op_level());
  const RunOutcome rb = replay_run(b, op_level());
  EXPECT_FALSE(ra.failed()) << ra.label;
  ASSERT_EQ(ra.history.size(), rb.history.size());
  for (std::size_t i = 0; i < ra.history.size(); ++i) {
    // The lines name offsets and accepted counts (token ids differ by seed).
    EXPECT_EQ(ra.history[i], rb.history[i]);
  }
  EXPECT_GE(ra.iterations, 3);
}

TEST(EngineRun, ARecordedFailureReplaysToTheSameStepAndShrinks) {
  // seed-pr with the overlap scheduler: a lazy capture with non-zero offsets
  // leaves its inputs changed (PR #7373's bug).
  int failed_at = -1;
  const EngineRun recorded = record(small_engine(Protocol::kSeedPr), 11, 150, &failed_at);
  ASSERT_GE(failed_at, 0) << "the recorded simulation did not fail";
  const RunOutcome again = replay_run(recorded, op_level());
  ASSERT_TRUE(again.failed());
  EXPECT_EQ(again.step, failed_at);
  EXPECT_EQ(again.failures.front().property, "capture_preserves_inputs");
  EXPECT_NE(again.label.find("(capture of key ("), std::string::npos) << again.label;
  EXPECT_NE(again.label.find("the capture changed its inputs"), std::string::npos);

  ShrinkStats stats;
  const auto [small, outcome] = shrink_run(recorded, again, op_level(), 4000, &stats);
  ASSERT_TRUE(outcome.failed());
  EXPECT_EQ(outcome.failures.front().property, "capture_preserves_inputs");
  EXPECT_FALSE(stats.budget_exhausted);
  // Hand-computed minimum: the bug needs a capture whose inputs carry a
  // non-zero offset. One request of one prompt token: its context runs
  // eagerly (iteration 0) and its first generation step captures
  // (iteration 1) with offsets +1/-draft_len from the context row's one
  // token; a request of one new token is still live then (the host lags one
  // iteration). Offsets exist only with speculative decoding, so draft_len
  // 1, and the smallest engine for it: batch size 1, 1 + 1 tokens. No draft
  // token need be accepted.
  EXPECT_EQ(count(small, RunStep::Kind::kAddRequest), 1) << summarize(small);
  EXPECT_EQ(count(small, RunStep::Kind::kIterate), 2) << summarize(small);
  ASSERT_EQ(small.steps.size(), 3u) << summarize(small);
  EXPECT_EQ(small.steps[0].prompt_len, 1);
  EXPECT_EQ(small.steps[0].max_new_tokens, 1);
  EXPECT_TRUE(small.steps[2].accepted.empty());
  EXPECT_EQ(small.config.max_batch_size, 1);
  EXPECT_EQ(small.config.draft_len, 1);
  EXPECT_EQ(small.config.max_num_tokens, 2);
  EXPECT_EQ(outcome.label, "iteration 1 (capture of key (1,1)): the capture changed its inputs");
  // The shrunk run is a value: its token reproduces it exactly.
  const RunOutcome replayed = replay_run(decode_run_token(encode_run_token(small)), op_level());
  ASSERT_TRUE(replayed.failed());
  EXPECT_EQ(replayed.label, outcome.label);
  EXPECT_EQ(replayed.history, outcome.history);
}

TEST(EngineRun, ATokenWrittenOnceStillReproduces) {
  // Written by encode_run_token from a shrunk seed-pr run. Its steps hold the
  // accepted counts and arrivals, so no generator or acceptance draw is in
  // it: changing the scenario generator cannot change what it replays.
  const std::string token = "ccr1:AQZ0cnRsbG0AAQKAEAEBAAEBAQEAAQELPID6AQIAAwABAQEAAQCtSBrT";
  const EngineRun run = decode_run_token(token);
  const RunOutcome outcome = replay_run(run, op_level());
  ASSERT_TRUE(outcome.failed());
  EXPECT_EQ(outcome.label, "iteration 1 (capture of key (1,1)): the capture changed its inputs");
  EXPECT_EQ(run.steps.size(), 3u);
  EXPECT_EQ(run.config.protocol, Protocol::kSeedPr);
}

TEST(EngineRun, ARefusedStepIsAUsageErrorNamingTheStep) {
  EngineRun run;
  run.config = small_engine(Protocol::kReference);
  run.steps = {RunStep{RunStep::Kind::kAddRequest, 100000, 1, 0, {}}};
  try {
    replay_run(run, op_level());
    ADD_FAILURE() << "a request longer than max_seq_len ran";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("run step 0 (add_request(prompt_len=100000"),
              std::string::npos)
        << e.what();
  }
}

TEST(EngineRun, RecorderDropsImpliedZerosAndSkipsDummies) {
  sim::EngineConfig config = small_engine(Protocol::kReference);
  RunRecorder recorder(SubjectRef{}, config);
  sim::Iteration it;
  it.num_generations = 4;
  it.num_dummy_requests = 1;
  it.accepted = {1, 0, 0, 0};
  recorder.iterate(&it);
  recorder.iterate(nullptr);
  ASSERT_EQ(recorder.run().steps.size(), 2u);
  EXPECT_EQ(recorder.run().steps[0].accepted, (std::vector<std::int32_t>{1}));
  EXPECT_TRUE(recorder.run().steps[1].accepted.empty());
}

}  // namespace
}  // namespace capcheck
