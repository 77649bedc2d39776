#include "capcheck/engine_runner.h"

#include "capcheck/trtllm_subject.h"

#include <algorithm>

namespace capcheck {

EngineRunner::EngineRunner(std::unique_ptr<Backend> backend, const sim::EngineConfig& config)
    : engine_(config), harness_(std::move(backend), make_trtllm_subject) {
  // Size the subjects once for the largest batch: a rebuild would drop graphs.
  std::int32_t seqs = config.max_batch_size;
  for (const auto size : engine_.supported_batch_sizes()) seqs = std::max(seqs, size);
  const std::int32_t tokens = std::max(config.max_num_tokens, seqs * (1 + config.draft_len));
  harness_.reserve(SubjectLimits{seqs, tokens});
}

std::vector<Verdict> EngineRunner::start() {
  std::vector<Verdict> failures;
  for (const Scenario& scenario : engine_.startup_captures()) {
    Verdict verdict = check_capture_preserves_inputs(harness_.continuing_graph(scenario), scenario);
    if (!verdict.passed) {
      verdict.notes.push_back("startup capture of batch size " +
                              std::to_string(scenario.key.batch_size));
      failures.push_back(std::move(verdict));
    }
  }
  return failures;
}

std::optional<IterationOutcome> EngineRunner::step() {
  std::optional<sim::Iteration> iteration = engine_.next_iteration();
  if (!iteration) return std::nullopt;
  IterationOutcome outcome{*iteration, {}};
  const Scenario& scenario = iteration->scenario;
  if (iteration->runs_as_graph) {
    Instance& graph = harness_.continuing_graph(scenario);
    if (iteration->action == sim::GraphAction::kCapture) {
      Verdict verdict = check_capture_preserves_inputs(graph, scenario);
      if (!verdict.passed) outcome.failures.push_back(std::move(verdict));
      // Between a lazy capture and its immediate replay nothing rewrites the
      // metadata (Note [TensorRT-LLM capture path]).
    } else {
      graph.prepare(scenario);
    }
    Outputs replayed, expected;
    graph.replay(replayed);
    Instance& eager = harness_.eager(scenario);
    eager.prepare(scenario);
    eager.forward_eager(expected);
    Verdict verdict = check_outputs_equal(
        "replays_match_eager",
        std::string(iteration->action == sim::GraphAction::kCapture ? "the first replay"
                                                                   : "the replay") +
            " of iteration " + std::to_string(iteration->index),
        expected, replayed);
    if (!verdict.passed) outcome.failures.push_back(std::move(verdict));
  } else {
    Subject& eager = harness_.eager_subject(scenario);
    eager.prepare(scenario);
    eager.forward_eager();
  }
  engine_.complete(*iteration);
  return outcome;
}

void EngineRunner::clear_graphs() {
  engine_.clear_graphs();
  Scenario any;
  harness_.continuing_graph_subject(any).reset();
}

}  // namespace capcheck
