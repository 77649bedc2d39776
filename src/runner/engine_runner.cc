#include "capcheck/engine_runner.h"

#include "capcheck/errors.h"
#include "capcheck/trtllm_subject.h"

#include <algorithm>

namespace capcheck {

EngineRunner::EngineRunner(std::unique_ptr<Backend> backend, const sim::EngineConfig& config)
    : EngineRunner(std::make_unique<Harness>(std::move(backend), make_trtllm_subject), config) {}

EngineRunner::EngineRunner(std::unique_ptr<Subjects> subjects, const sim::EngineConfig& config)
    : engine_(config), subjects_(std::move(subjects)) {
  CAPCHECK_ASSERT(subjects_ != nullptr);
  // Size the subjects once for the largest batch: a rebuild would drop graphs.
  std::int32_t seqs = config.max_batch_size;
  for (const auto size : engine_.supported_batch_sizes()) seqs = std::max(seqs, size);
  const std::int32_t tokens = std::max(config.max_num_tokens, seqs * (1 + config.draft_len));
  subjects_->reserve(SubjectLimits{seqs, tokens});
  if (subjects_->continuing(Scenario{}) == nullptr) {
    const std::string name = subjects_->subject_name();
    throw UsageError("subject " + (name.empty() ? std::string("given") : name) +
                     " cannot run engine iterations: its Subjects::continuing() keeps no state "
                     "across scenarios");
  }
}

Instance& EngineRunner::graph(const Scenario& scenario) {
  Instance* graph = subjects_->continuing(scenario);
  CAPCHECK_ASSERT(graph != nullptr);
  return *graph;
}

std::vector<Verdict> EngineRunner::start() {
  std::vector<Verdict> failures;
  for (const Scenario& scenario : engine_.startup_captures()) {
    Verdict verdict = check_capture_preserves_inputs(graph(scenario), scenario);
    if (!verdict.passed) {
      verdict.notes.push_back("startup capture of batch size " +
                              std::to_string(scenario.key.batch_size));
      failures.push_back(std::move(verdict));
    }
  }
  return failures;
}

std::optional<IterationOutcome> EngineRunner::step(const std::vector<std::int32_t>* accepted) {
  std::optional<sim::Iteration> iteration = engine_.next_iteration();
  if (!iteration) return std::nullopt;
  if (accepted) {
    Scenario& s = iteration->scenario;
    const std::int32_t real = s.num_generations - s.num_dummy_requests;
    for (std::int32_t g = 0; g < real; ++g) {
      const auto k = static_cast<std::size_t>(g);
      const std::int32_t count =
          k < accepted->size() ? std::clamp((*accepted)[k], 0, s.key.draft_len) : 0;
      s.num_accepted_tokens[k] = count;
      iteration->accepted[k] = count;
    }
  }
  IterationOutcome outcome{*iteration, {}};
  // An illegal call of the subject (a dangling buffer at replay, an
  // exception of its own) is a failure of the step's property, as in
  // check_property.
  std::string_view property = "replays_match_eager";
  try {
    run_step(*iteration, outcome, property);
  } catch (...) {
    outcome.failures.push_back(failure_of_current_exception(property, *subjects_));
  }
  engine_.complete(*iteration);
  return outcome;
}

void EngineRunner::run_step(const sim::Iteration& iteration, IterationOutcome& outcome,
                            std::string_view& property) {
  const Scenario& scenario = iteration.scenario;
  Outputs expected;
  if (iteration.runs_as_graph) {
    Instance& g = graph(scenario);
    if (iteration.action == sim::GraphAction::kCapture) {
      property = "capture_preserves_inputs";
      Verdict verdict = check_capture_preserves_inputs(g, scenario);
      property = "replays_match_eager";
      if (!verdict.passed) outcome.failures.push_back(std::move(verdict));
      // Between a lazy capture and its immediate replay nothing rewrites the
      // metadata (Note [TensorRT-LLM capture path]).
    } else {
      g.prepare(scenario);
    }
    Outputs replayed;
    g.replay(replayed);
    Instance& eager = subjects_->eager(scenario);
    eager.prepare(scenario);
    eager.forward_eager(expected);
    Verdict verdict = check_outputs_equal(
        "replays_match_eager",
        std::string(iteration.action == sim::GraphAction::kCapture ? "the first replay"
                                                                  : "the replay") +
            " of iteration " + std::to_string(iteration.index),
        expected, replayed);
    if (!verdict.passed) outcome.failures.push_back(std::move(verdict));
  } else {
    Instance& eager = subjects_->eager(scenario);
    eager.prepare(scenario);
    eager.forward_eager(expected);
  }
}

void EngineRunner::clear_graphs() {
  engine_.clear_graphs();
  // A reset releases the subject's graphs (Subjects::graph resets).
  subjects_->graph(Scenario{});
}

}  // namespace capcheck
