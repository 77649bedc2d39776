#include "capcheck/engine_commands.h"
#include "capcheck/report.h"

#include <sstream>

#include "capcheck/registry.h"
#include "capcheck/token.h"

namespace capcheck {

namespace {

[[noreturn]] void fail_with(const EngineSut& sut, const std::vector<Verdict>& failures,
                            const Scenario* scenario) {
  std::ostringstream out;
  out << "iteration history (" << sut.history.size() << " lines):\n";
  for (const auto& line : sut.history) out << "  " << line << '\n';
  for (const auto& v : failures) out << format_verdict(v);
  if (scenario) {
    out << "failing iteration as a scenario: " << reproduce_command(*scenario) << '\n';
  }
  out << "reproduce the run: capcheck reproduce " << encode_run_token(sut.recorder.run()) << '\n';
  RC_FAIL(out.str());
}

class AddRequest final : public EngineCommand {
 public:
  AddRequest()
      : prompt_len_(*rc::gen::inRange<std::int32_t>(1, 48)),
        max_new_tokens_(*rc::gen::inRange<std::int32_t>(1, 12)) {}
  void checkPreconditions(const EngineModel& model) const override {
    RC_PRE(model.requests_added < kEngineRequestsMax);
  }
  void apply(EngineModel& model) const override { ++model.requests_added; }
  void run(const EngineModel&, EngineSut& sut) const override {
    ++sut.commands_run;
    sut.runner.engine().add_request(prompt_len_, max_new_tokens_);
    sut.recorder.add_request(prompt_len_, max_new_tokens_);
    sut.history.push_back("add_request(prompt_len=" + std::to_string(prompt_len_) +
                          ", max_new_tokens=" + std::to_string(max_new_tokens_) + ")");
  }
  void show(std::ostream& os) const override {
    os << "AddRequest(" << prompt_len_ << ", " << max_new_tokens_ << ")";
  }

 private:
  std::int32_t prompt_len_;
  std::int32_t max_new_tokens_;
};

class RunIteration final : public EngineCommand {
 public:
  void run(const EngineModel&, EngineSut& sut) const override {
    ++sut.commands_run;
    const auto outcome = sut.runner.step();
    sut.recorder.iterate(outcome ? &outcome->iteration : nullptr);
    if (!outcome) {
      sut.history.push_back("(idle: no request can run)");
      return;
    }
    sut.history.push_back(outcome->iteration.describe());
    switch (outcome->iteration.action) {
      case sim::GraphAction::kCapture: ++sut.lazy_captures; break;
      case sim::GraphAction::kReplay: ++sut.replays; break;
      case sim::GraphAction::kEager: ++sut.eager_iterations; break;
    }
    if (!outcome->failures.empty()) fail_with(sut, outcome->failures, &outcome->iteration.scenario);
  }
  void show(std::ostream& os) const override { os << "RunIteration"; }
};

class FinishRequest final : public EngineCommand {
 public:
  FinishRequest() : which_(*rc::gen::inRange<std::int32_t>(0, kEngineRequestsMax)) {}
  void run(const EngineModel&, EngineSut& sut) const override {
    ++sut.commands_run;
    sim::Engine& engine = sut.runner.engine();
    if (engine.live_requests().empty() || engine.iteration_pending()) return;
    const auto id = engine.live_requests()[static_cast<std::size_t>(which_) %
                                           engine.live_requests().size()];
    engine.finish_request(id);
    sut.recorder.finish_request(which_);
    sut.history.push_back("finish_request(" + std::to_string(id) + ")");
  }
  void show(std::ostream& os) const override { os << "FinishRequest(" << which_ << ")"; }

 private:
  std::int32_t which_;
};

class ClearGraphs final : public EngineCommand {
 public:
  void run(const EngineModel&, EngineSut& sut) const override {
    ++sut.commands_run;
    sut.runner.clear_graphs();
    sut.recorder.clear_graphs();
    sut.history.push_back("clear_graphs()");
  }
  void show(std::ostream& os) const override { os << "ClearGraphs"; }
};

}  // namespace

EngineSut::EngineSut(const sim::EngineConfig& config, const std::string& backend)
    : runner(make_backend(backend), config), recorder(SubjectRef{}, config) {}

EngineSut::EngineSut(const sim::EngineConfig& config, std::unique_ptr<Subjects> subjects,
                     SubjectRef subject)
    : runner(std::move(subjects), config), recorder(std::move(subject), config) {}

rc::Gen<std::shared_ptr<const EngineCommand>> gen_engine_command(const EngineModel& model) {
  (void)model;
  // Iterations dominate, as in a serving loop.
  return rc::state::gen::execOneOfWithArgs<AddRequest, RunIteration, RunIteration, RunIteration,
                                           FinishRequest, ClearGraphs>()();
}

sim::EngineConfig stateful_engine_config(Protocol protocol, sim::CapturePolicy capture,
                                         bool draft_loop, std::uint64_t seed) {
  sim::EngineConfig config;
  config.max_batch_size = 8;
  config.max_num_tokens = 64;
  config.max_seq_len = 256;
  config.draft_len = 2;
  config.chunk_size = 16;
  config.draft_loop = draft_loop;
  config.capture = capture;
  config.protocol = protocol;
  config.acceptance_seed = seed;
  return config;
}

void start_engine(EngineSut& sut) {
  const auto failures = sut.runner.start();
  sut.history.push_back("startup captures: " +
                        std::to_string(sut.runner.engine().startup_captures().size()));
  if (!failures.empty()) fail_with(sut, failures, nullptr);
}

}  // namespace capcheck
