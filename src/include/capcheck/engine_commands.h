// Stateful testing of the engine with rc::state: commands on a simulated
// engine whose iterations run through a subject on a backend. After every
// iteration the graph path equals the eager path, and every capture
// (startup or lazy) preserves its inputs.
#pragma once

#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <memory>
#include <string>
#include <vector>

#include "capcheck/engine_run.h"
#include "capcheck/engine_runner.h"

namespace capcheck {

/// The model: what the commands need to stay within the engine's limits.
struct EngineModel {
  std::int32_t requests_added = 0;
};

/// The system under test: an EngineRunner plus the history of what ran.
struct EngineSut {
  explicit EngineSut(const sim::EngineConfig& config, const std::string& backend = "sim");
  /// Any subject that runs engine iterations (subject_from_environment()),
  /// named by `subject` in the run token of a failure.
  EngineSut(const sim::EngineConfig& config, std::unique_ptr<Subjects> subjects,
            SubjectRef subject);
  EngineRunner runner;
  /// The commands that acted, as a run: a failure prints its `ccr1:` token.
  RunRecorder recorder;
  std::vector<std::string> history;
  /// Commands run so far, for reporting how short a shrunk sequence is.
  int commands_run = 0;
  /// Graph iterations by what the runner did (coverage of a run).
  int lazy_captures = 0;
  int replays = 0;
  int eager_iterations = 0;
};

using EngineCommand = rc::state::Command<EngineModel, EngineSut>;

/// Most requests one command sequence adds.
inline constexpr std::int32_t kEngineRequestsMax = 24;

/// Generates commands: add request, run iteration, finish request, clear graphs.
rc::Gen<std::shared_ptr<const EngineCommand>> gen_engine_command(const EngineModel& model);

/// The engine configuration the stateful suite uses for `protocol` and capture policy.
sim::EngineConfig stateful_engine_config(Protocol protocol, sim::CapturePolicy capture,
                                         bool draft_loop, std::uint64_t seed);

/// Runs the startup captures and fails the case (RC_FAIL) on a violation.
void start_engine(EngineSut& sut);

}  // namespace capcheck
