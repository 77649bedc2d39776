// End to end: scenarios the engine simulator reaches, run through the
// built-in TensorRT-LLM subject on the sim backend. The reference protocol
// passes every property on them; PR #7373's protocol (seed-pr) fails
// capture_preserves_inputs exactly when a capture happens at runtime with
// the overlap scheduler's non-zero offsets, or when the draft loop is on.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "capcheck/trtllm_subject.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/sim/sim.h"
#include "capcheck/sim_backend.h"

namespace capcheck::sim {
namespace {

struct RunResult {
  int scenarios = 0;
  int runtime_captures = 0;
  std::vector<std::string> failures;  // "property: iteration description"
};

// Starts the engine and runs every scenario it captures (startup and
// runtime) through all non-canary properties; with `also_uncaptured`, every
// fourth other iteration too (as if its key had been captured then).
RunResult run(const EngineConfig& config, int iterations, bool also_uncaptured) {
  Engine engine(config);
  Harness harness(make_sim_backend(), make_trtllm_subject);
  RunResult result;
  auto check = [&](const Scenario& scenario, const std::string& where) {
    ++result.scenarios;
    for (const PropertyInfo& property : all_properties()) {
      if (property.canary || property.name == "backends_agree") continue;  // one backend here
      const Verdict verdict = check_property(property, harness, scenario);
      if (!verdict.passed) result.failures.push_back(std::string(property.name) + ": " + where);
    }
  };
  for (const Scenario& s : engine.startup_captures()) check(s, "startup " + summarize(s));
  std::uint64_t x = config.acceptance_seed;
  for (int i = 0; i < iterations; ++i) {
    x = splitmix64(x);
    if (x % 3 == 0) {
      engine.add_request(1 + static_cast<std::int32_t>((x >> 8) % 40),
                         1 + static_cast<std::int32_t>((x >> 20) % 12));
    }
    const std::optional<Iteration> it = engine.next_iteration();
    if (!it) continue;
    if (it->action == GraphAction::kCapture) ++result.runtime_captures;
    if (it->action == GraphAction::kCapture || (also_uncaptured && i % 4 == 0)) check(it->scenario, it->describe());
    engine.complete(*it);
  }
  return result;
}

EngineConfig config_of(Protocol protocol, CapturePolicy capture, bool draft_loop) {
  EngineConfig c;
  c.max_batch_size = 8;
  c.max_num_tokens = 64;
  c.draft_len = 2;
  c.chunk_size = 16;
  c.protocol = protocol;
  c.capture = capture;
  c.draft_loop = draft_loop;
  c.acceptance_seed = 1;
  return c;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

TEST(SimSubject, ReferenceProtocolPassesEveryPropertyOnReachableScenarios) {
  for (const CapturePolicy capture : {CapturePolicy::kStartup, CapturePolicy::kLazy}) {
    for (const bool draft_loop : {false, true}) {
      const RunResult r = run(config_of(Protocol::kReference, capture, draft_loop), 80, true);
      EXPECT_GT(r.scenarios, 5);
      EXPECT_TRUE(r.failures.empty()) << joined(r.failures);
    }
  }
}

TEST(SimSubject, SeedPrPassesWithStartupCaptureAndNoDraftLoop) {
  // Startup capture zeroes the offsets, which is why the bug hid upstream.
  const RunResult r = run(config_of(Protocol::kSeedPr, CapturePolicy::kStartup, false), 80, false);
  EXPECT_EQ(r.runtime_captures, 0);
  EXPECT_TRUE(r.failures.empty()) << joined(r.failures);
}

TEST(SimSubject, SeedPrFailsOnALazyRuntimeCapture) {
  const RunResult r = run(config_of(Protocol::kSeedPr, CapturePolicy::kLazy, false), 80, false);
  EXPECT_GT(r.runtime_captures, 0);
  bool capture_broken = false;
  for (const auto& f : r.failures) capture_broken |= f.rfind("capture_preserves_inputs", 0) == 0;
  EXPECT_TRUE(capture_broken) << joined(r.failures);
}

}  // namespace
}  // namespace capcheck::sim
