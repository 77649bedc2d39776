// capcheck simulate: the engine simulator's iterations through the subject;
// capcheck reproduce of a run token (the failing run of a simulate, shrunk).
#include <fmt/core.h>

#include <iostream>

#include "capcheck/engine_run.h"
#include "capcheck/engine_runner.h"
#include "capcheck/errors.h"
#include "capcheck/registry.h"
#include "capcheck/report.h"
#include "commands.h"

namespace capcheck::cli {

namespace {

// The first single-scenario property that fails on `scenario` alone, or null:
// what makes the failing iteration's token reproduce.
const PropertyInfo* reproducing_property(Subjects& subjects, const Scenario& scenario) {
  for (const PropertyInfo& property : all_properties()) {
    if (property.canary || property.name == "backends_agree") continue;
    if (!check_property(property, subjects, scenario).passed) return &property;
  }
  return nullptr;
}

// The failing run of a simulation: replayed from its record (it must fail
// again: the run is the value, not the seed), shrunk, and printed with its
// history, the failing step and the token that reproduces it.
void report_failing_run(const EngineRun& recorded, const SubjectsFactory& fresh,
                        const CaseContext& context, int shrink_candidates) {
  RunOutcome failing = replay_run(recorded, fresh);
  if (!failing.failed()) {
    std::cout << "the recorded run passed when replayed from a fresh engine: the subject does not "
                 "replay deterministically; no run token\n";
    return;
  }
  ShrinkStats stats;
  auto [run, outcome] = shrink_run(recorded, std::move(failing), fresh, shrink_candidates, &stats);
  std::cout << fmt::format("shrunk run ({} candidates tried, {} taken{}): {}\n",
                           stats.candidates_tried, stats.accepted,
                           stats.budget_exhausted ? ", budget exhausted" : "", summarize(run));
  for (const std::string& line : outcome.history) std::cout << "  " << line << '\n';
  for (const Verdict& v : outcome.failures) std::cout << format_verdict(v);
  std::cout << "failing step: " << outcome.label << '\n';
  std::cout << "reproduce the run: "
            << reproduce_command_for_token(encode_run_token(run), context, "") << '\n';
}

}  // namespace

// Runs the engine simulator for `iterations` iterations with requests arriving
// from the seed; one line per iteration, a summary, and on a violation the
// failing iteration's token (with the property that fails on it alone) and
// the command that replays the whole run.
int simulate_command(CommonOptions common, const SimulateOptions& o) {
  sim::EngineConfig config;
  config.max_batch_size = o.max_batch_size;
  config.max_num_tokens = o.max_num_tokens;
  config.draft_len = o.draft_len;
  config.draft_loop = o.draft_loop == "on" && o.draft_len > 0;
  config.capture = sim::parse_capture_policy(o.capture);
  config.protocol = parse_protocol(o.protocol);
  config.mutant = parse_mutant(o.mutant);
  config.acceptance_seed = o.seed;
  std::vector<const PropertyInfo*> none;
  OpenSubjects open = open_subjects(common, none);
  const CaseContext context = open.context;
  if (!(open.entry->fields & kFieldProtocol) && (o.protocol != "reference" || o.mutant != "none")) {
    throw UsageError("--protocol and --mutant are fields of the built-in TensorRT-LLM subjects; "
                     "subject " + open.entry->name + " does not read them");
  }
  require_mutant_implemented(*open.entry, config.mutant);
  EngineRunner runner(std::move(open.subjects), config);
  std::string subject_flags;
  if (context.subject.name != "trtllm") subject_flags += " --subject " + context.subject.name;
  for (const auto& [name, value] : context.subject.options) {
    subject_flags += " --option " + name + "=" + value;
  }
  if (!context.plugin.empty()) subject_flags += " --plugin " + context.plugin;
  const std::string rerun = fmt::format(
      "capcheck simulate --seed {} --iterations {} --protocol {} --mutant {} --capture {} "
      "--draft-len {} --draft-loop {} --max-batch-size {} --max-num-tokens {} --backend {}{}",
      o.seed, o.iterations, o.protocol, o.mutant, o.capture, o.draft_len,
      o.draft_loop, o.max_batch_size, o.max_num_tokens, common.backend, subject_flags);
  std::cout << "capcheck simulate: " << rerun.substr(std::string("capcheck simulate ").size())
            << '\n';
  RunRecorder recorder(context.subject, config);
  const SubjectsFactory fresh = fresh_subjects(common);
  auto report = [&](const std::vector<Verdict>& failures, const sim::Iteration* iteration) {
    for (const Verdict& v : failures) std::cout << format_verdict(v);
    if (iteration) {
      const Scenario& scenario = iteration->scenario;
      const bool capture = iteration->action == sim::GraphAction::kCapture;
      const char* what = !capture ? "replay"
                         : failures.front().property == "capture_preserves_inputs"
                             ? "capture"
                             : "first replay after a capture";
      std::cout << "failing " << what << " as a scenario: " << summarize(scenario, context.fields)
                << '\n';
      if (const PropertyInfo* p = reproducing_property(runner.subjects(), scenario)) {
        std::cout << "reproduce the iteration (" << p->name << " fails on it alone): "
                  << reproduce_command(scenario, context, p->name) << '\n';
      } else {
        std::cout << "no single-scenario property fails on the iteration alone (the failure "
                     "needs the run's history)\n";
      }
    }
    report_failing_run(recorder.run(), fresh, context, o.shrink_candidates);
    std::cout << "replay the whole simulation: " << rerun << '\n';
  };
  const auto startup = runner.start();
  std::cout << "startup: " << runner.engine().startup_captures().size() << " capture(s)\n";
  if (!startup.empty()) {
    report(startup, nullptr);
    return static_cast<int>(ExitCode::kPropertyViolated);
  }
  std::uint64_t arrivals = sim::splitmix64(o.seed ^ 0x5eedull);
  int captures = 0, replays = 0, eager = 0, idle = 0, added = 0;
  for (int i = 0; i < o.iterations; ++i) {
    arrivals = sim::splitmix64(arrivals);
    if (arrivals % 3 == 0 && runner.engine().live_count() < 4 * o.max_batch_size) {
      const auto prompt = 1 + static_cast<std::int32_t>((arrivals >> 8) % 48);
      const auto max_new = 1 + static_cast<std::int32_t>((arrivals >> 20) % 16);
      runner.engine().add_request(prompt, max_new);
      recorder.add_request(prompt, max_new);
      ++added;
    }
    const auto outcome = runner.step();
    recorder.iterate(outcome ? &outcome->iteration : nullptr);
    if (!outcome) {
      ++idle;
      continue;
    }
    const auto action = outcome->iteration.action;
    captures += action == sim::GraphAction::kCapture;
    replays += action == sim::GraphAction::kReplay;
    eager += action == sim::GraphAction::kEager;
    std::cout << outcome->iteration.describe() << (outcome->failures.empty() ? "" : "  VIOLATED")
              << '\n';
    if (!outcome->failures.empty()) {
      report(outcome->failures, &outcome->iteration);
      return static_cast<int>(ExitCode::kPropertyViolated);
    }
  }
  std::cout << fmt::format(
      "summary: {} iterations ({} lazy captures, {} replays, {} eager, {} idle), {} requests "
      "added, every capture preserved its inputs and every graph iteration matched eager\n"
      "final state hash: {:016x}\n",
      o.iterations, captures, replays, eager, idle, added, runner.engine().state_hash());
  return 0;
}


// capcheck reproduce <run token>: the run from a fresh engine, step by step,
// its first failure and the failing step's label; exit 1 on a failure.
int reproduce_run(CommonOptions common, const std::string& token) {
  const EngineRun run = decode_run_token(token);
  DecodedToken names;
  names.subject = run.subject;
  names.names_subject = true;
  std::vector<const PropertyInfo*> none;
  OpenSubjects open = open_subjects(common, none, &names);
  const CaseContext& context = open.context;
  if (!(open.entry->fields & kFieldProtocol) &&
      (run.config.protocol != Protocol::kReference || run.config.mutant != Mutant::kNone)) {
    throw UsageError("the run names protocol/mutant fields of the built-in TensorRT-LLM "
                     "subjects; subject " + open.entry->name + " does not read them");
  }
  require_mutant_implemented(*open.entry, run.config.mutant);
  std::cout << "subject: " << describe(context.subject) << '\n';
  if (!context.plugin.empty()) std::cout << "plugin: " << context.plugin << '\n';
  std::cout << "backend: " << common.backend << '\n';
  std::cout << "run: " << summarize(run) << '\n';
  // The subjects opened above serve the replay; a second one would get new ones.
  std::unique_ptr<Subjects> first = std::move(open.subjects);
  const SubjectsFactory again = fresh_subjects(common, &names);
  const SubjectsFactory fresh = [&]() { return first ? std::move(first) : again(); };
  const RunOutcome outcome = replay_run(run, fresh);
  for (const std::string& line : outcome.history) std::cout << "  " << line << '\n';
  for (const Verdict& v : outcome.failures) std::cout << format_verdict(v);
  if (outcome.failed()) {
    std::cout << "failing step: " << outcome.label << '\n';
    std::cout << fmt::format("summary: the run failed at step {} of {} ({} iteration(s) ran)\n",
                             outcome.step, run.steps.size(), outcome.iterations);
  } else {
    std::cout << fmt::format("summary: the run passed: {} step(s), {} iteration(s), every capture "
                             "preserved its inputs and every graph iteration matched eager\n",
                             run.steps.size(), outcome.iterations);
  }
  if (const std::string error = stdout_error(); !error.empty()) {
    std::cerr << "capcheck: " << error << '\n';
    return static_cast<int>(ExitCode::kIncomplete);
  }
  return outcome.failed() ? static_cast<int>(ExitCode::kPropertyViolated) : 0;
}

}  // namespace capcheck::cli
