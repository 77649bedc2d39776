// Runs the engine simulator's iterations through a subject on a backend: the
// startup captures, then each iteration as the CUDA-graph runner would (lazy
// capture, replay, or eager), checking after every capture that it preserved
// its inputs and after every graph iteration that the graph path equals the
// eager path of the same iteration.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/sim/sim.h"

namespace capcheck {

struct IterationOutcome {
  sim::Iteration iteration;
  /// capture_preserves_inputs (on captures) and replays_match_eager (on graph
  /// iterations) verdicts that failed.
  std::vector<Verdict> failures;
};

class EngineRunner {
 public:
  /// The built-in op-level subject on `backend`.
  EngineRunner(std::unique_ptr<Backend> backend, const sim::EngineConfig& config);
  /// Any subject whose Subjects::continuing() keeps state across iterations
  /// (UsageError naming it otherwise).
  EngineRunner(std::unique_ptr<Subjects> subjects, const sim::EngineConfig& config);

  /// Runs the startup captures (TensorRT-LLM's warmup); returns failed verdicts.
  std::vector<Verdict> start();
  /// The next iteration, run and checked; nullopt when no request can run.
  /// `accepted`, when given, replaces the acceptance model's counts: the k-th
  /// real generation row accepts accepted[k] (0 past its end, at most the
  /// draft length), as a recorded run (engine_run.h) replays them.
  std::optional<IterationOutcome> step(const std::vector<std::int32_t>* accepted = nullptr);
  /// CUDAGraphRunner.clear(): the engine forgets its graphs, the subject releases them.
  void clear_graphs();

  sim::Engine& engine() { return engine_; }
  Subjects& subjects() { return *subjects_; }

 private:
  Instance& graph(const Scenario& scenario);
  // The step's device work; `property` names what a throw would fail.
  void run_step(const sim::Iteration& iteration, IterationOutcome& outcome,
                std::string_view& property);

  sim::Engine engine_;
  std::unique_ptr<Subjects> subjects_;
};

}  // namespace capcheck
