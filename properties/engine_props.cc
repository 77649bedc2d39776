// Stateful properties over the simulated engine (rc::state): random command
// sequences (add request, run iteration, finish request, clear graphs) drive
// the engine simulator; every capture must preserve its inputs and every graph
// iteration must equal the eager path of the same iteration.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <regex>
#include <sstream>

#include "capcheck/engine_commands.h"
#include "capcheck/harness.h"
#include "capcheck/sim_backend.h"
#include "capcheck/trtllm_subject.h"
#include "capcheck/subject_registry.h"

namespace capcheck {
namespace {

struct StatefulRun {
  bool passed = true;
  int sequences_passed = 0;
  int shrunk_commands = 0;  // commands the shrunk failing sequence ran
  int lazy_captures = 0, replays = 0, eager_iterations = 0;
  std::string report;
};

// The subject of the reference run: CAPCHECK_SUBJECT (default trtllm, the
// op-level one), CAPCHECK_SUBJECT_OPTIONS, CAPCHECK_BACKEND and the plugins of
// CAPCHECK_PLUGIN_PATH. The protocol-specific tests below are the built-in
// subject's.
ChosenSubject reference_subject() { return subject_from_environment(); }

StatefulRun run_stateful(Protocol protocol, sim::CapturePolicy capture, bool draft_loop,
                         int sequences, std::uint64_t seed, bool from_environment = false) {
  StatefulRun run;
  auto body = [&] {
    const auto acceptance_seed = *rc::gen::arbitrary<std::uint32_t>();
    const auto config = stateful_engine_config(protocol, capture, draft_loop, acceptance_seed);
    ChosenSubject chosen;
    if (from_environment) chosen = reference_subject();
    EngineSut sut = from_environment
                        ? EngineSut(config, std::move(chosen.subjects), chosen.subject)
                        : EngineSut(config);
    try {
      start_engine(sut);
      rc::state::check(EngineModel{}, sut, &gen_engine_command);
      run.lazy_captures += sut.lazy_captures;
      run.replays += sut.replays;
      run.eager_iterations += sut.eager_iterations;
    } catch (...) {
      run.shrunk_commands = sut.commands_run;  // the last failure is the shrunk one
      throw;
    }
  };
  rc::detail::TestParams params;
  params.seed = seed;
  params.maxSuccess = sequences;
  const auto result = rc::detail::checkProperty(rc::detail::toProperty(body),
                                                rc::detail::TestMetadata{}, params);
  if (result.template is<rc::detail::SuccessResult>()) {
    run.sequences_passed = result.template get<rc::detail::SuccessResult>().numSuccess;
    return run;
  }
  run.passed = false;
  std::ostringstream out;
  rc::detail::printResultMessage(result, out);
  run.report = out.str();
  return run;
}

const char* profile_sequences() {
  const char* profile = std::getenv("CAPCHECK_PROFILE");
  return profile && std::string(profile) == "long" ? "long" : "ci";
}

int sequences(int ci) { return std::string(profile_sequences()) == "long" ? ci * 20 : ci; }

TEST(EngineProperties, ReferenceHoldsOverCommandSequences) {
  for (const auto capture : {sim::CapturePolicy::kLazy, sim::CapturePolicy::kStartup}) {
    for (const bool draft_loop : {true, false}) {
      const StatefulRun run = run_stateful(Protocol::kReference, capture, draft_loop,
                                           sequences(500), 7, /*from_environment=*/true);
      EXPECT_TRUE(run.passed) << run.report;
      // The sequences really reach graphs: replays always, lazy captures under kLazy.
      EXPECT_GT(run.replays, 100) << capture_policy_name(capture);
      if (capture == sim::CapturePolicy::kLazy) EXPECT_GT(run.lazy_captures, 50);
      std::cout << capture_policy_name(capture) << " draft_loop=" << draft_loop << ": "
                << run.sequences_passed << " sequences, " << run.lazy_captures
                << " lazy captures, " << run.replays << " replays, " << run.eager_iterations
                << " eager iterations\n";
    }
  }
}

TEST(EngineProperties, SeedPrWithLazyCaptureFailsAndShrinksShort) {
  const StatefulRun run =
      run_stateful(Protocol::kSeedPr, sim::CapturePolicy::kLazy, /*draft_loop=*/false, 500, 7);
  ASSERT_FALSE(run.passed);
  EXPECT_NE(run.report.find("capture_preserves_inputs: VIOLATED"), std::string::npos) << run.report;
  EXPECT_NE(run.report.find("capcheck reproduce cc2:"), std::string::npos) << run.report;
  // A request must reach generation (its context iteration runs eagerly) and
  // the next iteration captures lazily: AddRequest, RunIteration, RunIteration.
  EXPECT_LE(run.shrunk_commands, 3) << run.report;
  // The shrunk command sequence is a run: its token replays the same failure
  // on a fresh engine, outside RapidCheck.
  std::smatch token;
  ASSERT_TRUE(std::regex_search(run.report, token,
                                std::regex("reproduce the run: capcheck reproduce (ccr1:[A-Za-z0-9_-]+)")))
      << run.report;
  const SubjectsFactory op_level = []() -> std::unique_ptr<Subjects> {
    return std::make_unique<Harness>(make_sim_backend(), make_trtllm_subject);
  };
  const RunOutcome replayed = replay_run(decode_run_token(token[1].str()), op_level);
  ASSERT_TRUE(replayed.failed());
  EXPECT_EQ(replayed.failures.front().property, "capture_preserves_inputs");
  EXPECT_NE(replayed.label.find("(capture of key ("), std::string::npos) << replayed.label;
  std::cout << "seed-pr, lazy capture: shrunk to " << run.shrunk_commands << " commands\n"
            << run.report << '\n';
}

// Why the bug hid upstream: TensorRT-LLM captures at startup with zeroed
// offsets; without lazy captures (and without the draft loop), seed-pr's
// postprocess after capture subtracts zeros.
TEST(EngineProperties, SeedPrPassesWithStartupOnlyCaptureAndNoDraftLoop) {
  const StatefulRun run =
      run_stateful(Protocol::kSeedPr, sim::CapturePolicy::kStartupOnly, false, 200, 7);
  EXPECT_TRUE(run.passed) << run.report;
}

// The draft loop moves kv_lens in every warmup forward: even startup capture
// (zero offsets) breaks under pre-fix and seed-pr; snapshot-restore and
// reference undo it.
TEST(EngineProperties, DraftLoopBreaksStartupCaptureUnderPreFixAndSeedPr) {
  for (const Protocol protocol : {Protocol::kPreFix, Protocol::kSeedPr}) {
    const StatefulRun run =
        run_stateful(protocol, sim::CapturePolicy::kStartupOnly, true, 50, 7);
    EXPECT_FALSE(run.passed) << protocol_name(protocol);
    EXPECT_NE(run.report.find("startup capture of batch size"), std::string::npos) << run.report;
  }
  for (const Protocol protocol : {Protocol::kReference, Protocol::kSnapshotRestore}) {
    const StatefulRun run =
        run_stateful(protocol, sim::CapturePolicy::kStartupOnly, true, 100, 7);
    EXPECT_TRUE(run.passed) << protocol_name(protocol) << run.report;
  }
}

}  // namespace
}  // namespace capcheck
