// capcheck simulate: the engine simulator's iterations through the subject.
#include <fmt/core.h>

#include <iostream>

#include "capcheck/engine_runner.h"
#include "capcheck/errors.h"
#include "capcheck/registry.h"
#include "capcheck/report.h"
#include "commands.h"

namespace capcheck::cli {

// The first single-scenario property that fails on `scenario` alone, or null:
// what makes the failing iteration's token reproduce.
const PropertyInfo* reproducing_property(Subjects& subjects, const Scenario& scenario) {
  for (const PropertyInfo& property : all_properties()) {
    if (property.canary || property.name == "backends_agree") continue;
    if (!check_property(property, subjects, scenario).passed) return &property;
  }
  return nullptr;
}

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
  auto report = [&](const std::vector<Verdict>& failures, const Scenario* scenario,
                    const char* what) {
    for (const Verdict& v : failures) std::cout << format_verdict(v);
    if (scenario) {
      std::cout << "failing " << what << " as a scenario: " << summarize(*scenario, context.fields)
                << '\n';
      if (const PropertyInfo* p = reproducing_property(runner.subjects(), *scenario)) {
        std::cout << "reproduce (" << p->name << " fails on it alone): "
                  << reproduce_command(*scenario, context, p->name) << '\n';
      } else {
        std::cout << "no single-scenario property fails on it alone (the failure needs the "
                     "run's history): " << reproduce_command(*scenario, context) << '\n';
      }
    }
    std::cout << "replay the whole run: " << rerun << '\n';
  };
  const auto startup = runner.start();
  std::cout << "startup: " << runner.engine().startup_captures().size() << " capture(s)\n";
  if (!startup.empty()) {
    report(startup, nullptr, "");
    return static_cast<int>(ExitCode::kPropertyViolated);
  }
  std::uint64_t arrivals = sim::splitmix64(o.seed ^ 0x5eedull);
  int captures = 0, replays = 0, eager = 0, idle = 0, added = 0;
  for (int i = 0; i < o.iterations; ++i) {
    arrivals = sim::splitmix64(arrivals);
    if (arrivals % 3 == 0 && runner.engine().live_count() < 4 * o.max_batch_size) {
      runner.engine().add_request(1 + static_cast<std::int32_t>((arrivals >> 8) % 48),
                                  1 + static_cast<std::int32_t>((arrivals >> 20) % 16));
      ++added;
    }
    const auto outcome = runner.step();
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
      report(outcome->failures, &outcome->iteration.scenario,
             action == sim::GraphAction::kCapture ? "capture" : "replay");
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

}  // namespace capcheck::cli
