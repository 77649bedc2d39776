// capcheck run: every selected property over generated scenarios, a table,
// then each failure with its report, regression drafts and, with
// --regressions, the new failure appended.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <iostream>
#include <random>
#include <tuple>

#include "capcheck/harness.h"
#include "capcheck/errors.h"
#include "capcheck/hash.h"
#include "capcheck/registry.h"
#include "capcheck/engine_run.h"
#include "capcheck/regressions.h"
#include "capcheck/report.h"
#include "capcheck/token.h"
#include "capcheck/trtllm_subject.h"
#include "case_log.h"
#include "commands.h"

namespace capcheck::cli {

namespace {

// "seed-pr protocol=seed-pr mutant=none " for a subject that reads those
// fields; "" for any other.
std::string protocol_text(const Scenario& scenario, const CaseContext& context) {
  if (!(context.fields & kFieldProtocol)) return "";
  return fmt::format(" protocol={} mutant={}", protocol_name(scenario.protocol),
                     mutant_name(scenario.mutant));
}

// A ready-to-paste regression: the token line for a regression file, and,
// for the op-level subject, a GoogleTest that pins the case under the
// correct protocol.
void print_regression_draft(const RunResult& failure, const Scenario& scenario,
                            const CaseContext& context) {
  const std::string token = encode_token(scenario, context.subject);
  std::cout << "regression draft (a line for `capcheck run --regressions DIR`):\n"
            << "  # " << failure.property << protocol_text(scenario, context) << " subject="
            << describe(context.subject) << " found " << today() << '\n'
            << "  " << token << '\n';
  if (context.subject.name != "trtllm") return;  // the test draft below is the op-level subject's
  std::cout << "regression test draft (GoogleTest; holds once the bug is fixed):\n"
            << "  TEST(Regression, " << failure.property << "_" << std::hex
            << (fnv1a64(token) & 0xffffffu) << std::dec << ") {\n"
            << "    capcheck::Scenario s = capcheck::decode_token(\"" << token << "\");\n"
            << "    s.protocol = capcheck::Protocol::kReference;  // the fixed protocol\n"
            << "    capcheck::Harness harness(capcheck::make_backend(\"" << context.backend
            << "\"), capcheck::make_trtllm_subject);\n"
            << "    EXPECT_TRUE(capcheck::check_property(capcheck::find_property(\""
            << failure.property << "\"), harness, s).passed);\n"
            << "  }\n";
}

// The ccr1: entries of a regression directory, each replayed as an engine
// run on fresh subjects; a failing one is reported with its failing step.
// Returns how many failed.
int replay_run_regressions(const std::vector<RegressionEntry>& runs, const CommonOptions& common,
                           const CaseContext& context) {
  int failed = 0;
  const SubjectsFactory fresh = fresh_subjects(common);
  for (const RegressionEntry& entry : runs) {
    EngineRun run;
    try {
      run = decode_run_token(entry.run_token);
    } catch (const UsageError& e) {
      throw UsageError(entry.file + ":" + std::to_string(entry.line) + ": " + e.what());
    }
    const RunOutcome outcome = replay_run(run, fresh);
    if (!outcome.failed()) continue;
    ++failed;
    const auto from = entry.comment.find_first_not_of(' ');
    const std::string comment = from == std::string::npos ? "" : entry.comment.substr(from);
    std::cout << fmt::format("\n--- regression run {}:{} failed{}: {}\n", entry.file, entry.line,
                             comment.empty() ? "" : " (" + comment + ")",
                             outcome.label);
    for (const Verdict& v : outcome.failures) std::cout << format_verdict(v);
    std::cout << "reproduce: " << reproduce_command_for_token(entry.run_token, context, "")
              << "\n\n";
  }
  return failed;
}

// --shard and --worker: I/N with 1 <= I <= N.
std::pair<std::uint64_t, std::uint64_t> parse_part(const std::string& text, const char* flag) {
  const UsageError bad(std::string(flag) + ": must be I/N with 1 <= I <= N <= 999999 (got " +
                       quote_input(text) + ")");
  auto number = [&](const std::string& digits) -> std::uint64_t {
    if (digits.empty() || digits.size() > 6 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      throw bad;
    }
    return std::stoull(digits);
  };
  const auto slash = text.find('/');
  if (slash == std::string::npos) throw bad;
  const std::uint64_t index = number(text.substr(0, slash));
  const std::uint64_t count = number(text.substr(slash + 1));
  if (index < 1 || index > count) throw bad;
  return {index, count};
}

// "  (+3 regressions)": how many regression scenarios this property replayed.
std::string regressions_note(const RunResult& result) {
  const int replayed =
      result.regressions_passed + (result.found_by == CaseOrigin::kRegression ? 1 : 0);
  if (replayed == 0) return "";
  return fmt::format("  (+{} regression{})", replayed, replayed == 1 ? "" : "s");
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGPIPE: return "SIGPIPE (standard output closed)";
    default: return "a stop request";
  }
}

// What a property's row says in the result column.
std::string result_word(const RunResult& result) {
  if (!result.passed) return "VIOLATED";
  return result.cases_run() == 0 ? "NO CASES" : "passed";
}

}  // namespace

int run_command(CommonOptions common, const RunOptions& options) {
  const auto run_start = std::chrono::steady_clock::now();
  RunConfig config;
  config.cases = options.cases;
  config.gen = options.ranges;
  config.gen.draft_loop = options.draft_loop == "on";
  config.gen.capture = options.capture == "startup"   ? CaptureKind::kStartup
                       : options.capture == "runtime" ? CaptureKind::kRuntime
                                                      : CaptureKind::kAny;
  config.gen.protocol = parse_protocol(options.protocol);
  config.gen.mutant = parse_mutant(options.mutant);
  validate(config.gen);
  config.shrink_tries_max = options.shrink_tries_max;
  config.stop = stop_flag();
  auto properties = select_properties(common.properties);
  OpenSubjects open = open_subjects(common, properties);
  Subjects& subjects = open.get();
  const SubjectEntry& entry = *open.entry;
  const CaseContext& context = open.context;
  // Protocol and mutant are fields of the built-in TensorRT-LLM scenarios:
  // a subject that does not read them does not take them.
  if (!(entry.fields & kFieldProtocol) && options.protocol != "reference") {
    throw UsageError("--protocol is a field of the built-in TensorRT-LLM subjects; subject " +
                     entry.name + " does not read it (its options: see `capcheck list`)");
  }
  if (!(entry.fields & kFieldMutant) && options.mutant != "none") {
    throw UsageError("--mutant is a field of the built-in TensorRT-LLM subjects; subject " +
                     entry.name + " does not read it (its variants are --option values: see "
                     "`capcheck list`)");
  }
  require_mutant_implemented(entry, parse_mutant(options.mutant));
  if (entry.generator) config.generator = subject_generator(entry, config.gen, context.subject.options);
  int other_subjects = 0;
  std::vector<RegressionEntry> run_regressions;  // ccr1: lines, replayed as engine runs
  if (!options.regressions_dir.empty()) {
    std::vector<std::string> warnings;
    for (auto& kept : load_regressions(options.regressions_dir, &warnings)) {
      if (!replays_under(kept, entry.name, entry.builtin_scenarios)) {
        ++other_subjects;
        continue;
      }
      if (!kept.run_token.empty()) {
        run_regressions.push_back(std::move(kept));
      } else {
        config.regressions.push_back(std::move(kept.scenario));
      }
    }
    for (const auto& warning : warnings) std::cerr << "capcheck: --regressions: " << warning << '\n';
  }
  cli::CaseLog log(options.in_flight_path, options.json_path, options.case_timeout_seconds,
                   context);
  config.observer = &log;

  const bool ci = ci_mode();
  // --shard I/N: units (property p, batch b), numbered p * batches + b.
  std::uint64_t shard_index = 1, shard_count = 1;
  if (!options.shard.empty()) {
    std::tie(shard_index, shard_count) = parse_part(options.shard, "--shard");
    if (!options.seed && !ci) {
      throw UsageError("--shard needs the same seeds in every part: pass --seed S or set CI=true");
    }
  }
  if (options.jobs > 1 && !options.json_path.empty()) {
    throw UsageError("--json writes one process's cases; with --jobs each worker has its own: "
                     "run with --jobs 1, or one --shard per process with its own --json");
  }
  const std::uint64_t batches =
      (static_cast<std::uint64_t>(options.cases) + kCasesPerBatch - 1) / kCasesPerBatch;
  std::random_device entropy;
  std::vector<std::uint64_t> seeds;
  // A --jobs worker runs with its parent's seeds.
  for (const std::string& text : options.worker_seeds) seeds.push_back(std::stoull(text));
  if (!options.worker_seeds.empty() && seeds.size() != properties.size()) {
    throw UsageError("--worker-seed: one per property is needed");
  }
  for (const PropertyInfo* property : properties) {
    if (!options.worker_seeds.empty()) break;
    seeds.push_back(options.seed ? *options.seed
                    : ci         ? ci_seed(property->name)
                                 : (static_cast<std::uint64_t>(entropy()) << 32) ^ entropy());
  }
  const UnitPlan plan{batches, shard_index, shard_count, options.cases};
  if (!options.worker.empty()) {
    parse_part(options.worker, "--worker");
    return run_worker_units(subjects, properties, config, seeds, plan);
  }
  const std::string scenario_options =
      entry.fields & kFieldProtocol
          ? fmt::format(" protocol={} mutant={} draft_loop={} capture={}", options.protocol,
                        options.mutant, options.draft_loop, options.capture)
          : entry.generator ? std::string(" generator=the subject's own")
                            : fmt::format(" draft_loop={} capture={}", options.draft_loop,
                                          options.capture);
  std::cout << fmt::format(
      "capcheck run: subject={} backend={}{} cases={} seeds={}\n", describe(context.subject),
      common.backend, scenario_options, options.cases,
      options.seed ? "fixed (--seed)" : ci ? "derived from property names (CI=true)" : "random");
  if (!entry.plugin.empty()) std::cout << "plugin: " << entry.plugin << '\n';
  if (options.jobs > 1) {
    std::cout << fmt::format("jobs: {} worker processes, each with its own backend and subject; "
                             "time_s sums the workers' times\n",
                             options.jobs);
  }
  if (shard_count > 1) {
    std::cout << fmt::format("shard {}/{}: the units (property, batch of {} cases) numbered "
                             "{} modulo {}\n",
                             shard_index, shard_count, kCasesPerBatch, shard_index - 1, shard_count);
  }
  if (!config.regressions.empty()) {
    std::cout << fmt::format("regressions: {} scenario(s) from {} replayed first\n",
                             config.regressions.size(), options.regressions_dir);
  }
  int runs_failed = 0;
  if (!run_regressions.empty()) {
    std::cout << fmt::format("regressions: {} engine run(s) from {} replayed first\n",
                             run_regressions.size(), options.regressions_dir);
    runs_failed = replay_run_regressions(run_regressions, common, context);
  }
  if (other_subjects > 0) {
    std::cout << fmt::format("regressions: {} entr{} of other subjects in {} skipped\n",
                             other_subjects, other_subjects == 1 ? "y" : "ies",
                             options.regressions_dir);
  }
  if (!log.in_flight_path().empty()) {
    std::cout << "in-flight token: " << log.in_flight_path()
              << " (holds the running case; left behind only if capcheck dies)\n";
  }
  std::cout << fmt::format("{:<38} {:>20} {:>13} {:<9} {:>9} {:>10}\n", "property", "seed",
                           "cases", "result", "time_s", "cases/s");
  std::vector<RunResult> results;
  std::vector<std::string> output_errors;
  int other_shard_properties = 0;  // --shard: every case of it on other shards
  std::vector<RunResult> merged;   // --jobs: every property's result, from the workers
  if (options.jobs > 1) {
    merged = run_in_workers(subjects, properties, seeds, plan, options.jobs, options.seconds_max,
                            &output_errors);
  }
  // Note [lockstep]: properties with one seed (--seed) check each scenario in
  // turn, sharing its capture; any failure and they run one by one as below.
  // Not with --jobs, --shard, --max-seconds (a budget per property) or --json
  // (whose lines keep the one-by-one order).
  std::optional<std::vector<RunResult>> lockstep;
  const bool one_seed = std::all_of(seeds.begin(), seeds.end(), [&](auto s) { return s == seeds[0]; });
  if (options.jobs == 1 && shard_count == 1 && options.seconds_max == 0 && options.json_path.empty() &&
      properties.size() > 1 && one_seed) {
    config.seed = seeds[0];
    lockstep = run_lockstep(subjects, properties, config);
  }
  for (std::size_t i = 0; i < properties.size(); ++i) {
    if (options.jobs == 1 && !lockstep && config.stop->load()) break;
    // --max-seconds is the budget of the whole run (regressions and their
    // loading included): each property gets an equal share of what is left.
    if (options.seconds_max > 0) {
      const double used =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
      config.seconds_max = std::max(options.seconds_max - used, 1e-9) /
                           static_cast<double>(properties.size() - i);
    }
    config.seed = seeds[i];
    if (shard_count > 1) {
      config.owns_batch = [=](std::uint64_t batch) {
        return (i * batches + batch) % shard_count == shard_index - 1;
      };
    }
    const RunResult result = options.jobs > 1 ? merged[i]
                             : lockstep       ? (*lockstep)[i]
                                              : run_property(subjects, *properties[i], config);
    if (result.cases_other_shards == options.cases) {
      std::cout << fmt::format("{:<38} {:>20} {:>13} {:<9}\n", result.property, result.seed,
                               fmt::format("0/{}", options.cases), "other shard");
      ++other_shard_properties;
      continue;
    }
    const bool failed_generated = !result.passed && result.found_by != CaseOrigin::kRegression;
    const int run_cases = result.cases_passed + (failed_generated ? 1 : 0);
    const std::string stopped = result.stopped_by_request  ? "  (interrupted)"
                                : result.stopped_by_deadline ? "  (stopped by --max-seconds)"
                                                             : "";
    std::cout << fmt::format("{:<38} {:>20} {:>13} {:<9} {:>9.3f} {:>10.0f}{}\n", result.property,
                             result.seed, fmt::format("{}/{}", run_cases, options.cases),
                             result_word(result), result.seconds,
                             result.seconds > 0 ? result.cases_run() / result.seconds : 0.0,
                             regressions_note(result) + stopped +
                                 (result.cases_other_shards > 0
                                      ? fmt::format("  ({} on other shards)", result.cases_other_shards)
                                      : std::string()));
    results.push_back(result);
    // A closed standard output (`| head`) stops the run like a signal would,
    // so what was found is still saved.
    if (const std::string error = stdout_error(); !error.empty()) {
      if (output_errors.empty()) output_errors.push_back(error);
      request_stop();
    }
  }

  int violated = 0;
  int without_cases = 0;
  std::vector<std::string> saved;  // "path" per regression appended
  for (const RunResult& failure : results) {
    if (failure.passed) {
      if (failure.cases_run() == 0) ++without_cases;
      continue;
    }
    ++violated;
    std::cout << fmt::format(
        "\n--- {} violated (seed {}, found by {} after {} passing case(s); shrunk in {} step(s), "
        "{} tried{})\n",
        failure.property, failure.seed, case_origin_name(failure.found_by), failure.cases_passed,
        failure.shrinks_accepted, failure.shrinks_tried,
        failure.shrink_budget_exhausted ? ", stopped by --shrink-budget"
        : failure.stopped_by_request    ? ", shrinking interrupted"
        : failure.stopped_by_deadline   ? ", shrinking stopped by --max-seconds"
                                        : "");
    std::cout << failure_report(failure.verdict, *failure.counterexample, context);
    print_regression_draft(failure, *failure.counterexample, context);
    if (!options.regressions_dir.empty() && failure.found_by != CaseOrigin::kRegression) {
      const Scenario& kept = *failure.counterexample;
      try {
        const std::string path = append_regression(
            options.regressions_dir, kept, context.subject,
            fmt::format("{}{} subject={} found {}", failure.property, protocol_text(kept, context),
                        describe(context.subject), today()));
        std::cout << "appended to " << path << '\n';
        saved.push_back(path);
      } catch (const OutputError& e) {
        // Never "appended" for an entry that is not there: say so loudly, with
        // the token, on stderr too (stdout may be the file that is full).
        const std::string error = std::string(e.what()) + "; the failure was NOT saved; its token: " +
                                  encode_token(kept, context.subject);
        output_errors.push_back(error);
        std::cout << "NOT appended: " << error << '\n';
      }
    }
  }
  if (options.jobs > 1) {
    int cases = 0;
    for (const RunResult& r : results) cases += r.cases_run();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    std::cout << fmt::format("jobs: {} cases in {:.3f} s of wall time on {} workers: {:.0f} "
                             "cases/s\n",
                             cases, wall, options.jobs, wall > 0 ? cases / wall : 0.0);
  }
  const std::size_t not_run = properties.size() - results.size() -
                              static_cast<std::size_t>(other_shard_properties);
  std::string summary = fmt::format("summary: {} propert{} run, {} passed, {} violated",
                                    results.size(), results.size() == 1 ? "y" : "ies",
                                    results.size() - violated - without_cases, violated);
  if (!run_regressions.empty()) {
    summary += fmt::format("; {} of {} regression run(s) failed", runs_failed,
                           run_regressions.size());
  }
  if (without_cases) summary += fmt::format(", {} ran no case", without_cases);
  if (other_shard_properties) {
    summary += fmt::format(", {} on other shards (shard {}/{})", other_shard_properties, shard_index,
                           shard_count);
  }
  if (not_run) summary += fmt::format(", {} not run (interrupted)", not_run);
  std::cout << '\n' << summary << '\n';
  if (without_cases && !options.allow_no_cases) {
    std::cout << "a property that ran no case has not passed: raise --max-seconds (or pass "
                 "--allow-no-cases)\n";
  }
  if (const std::string error = log.finish_json(); !error.empty()) output_errors.push_back(error);
  if (const std::string error = stdout_error(); !error.empty() &&
      std::find(output_errors.begin(), output_errors.end(), error) == output_errors.end()) {
    output_errors.push_back(error);
  }

  const bool interrupted = config.stop->load() && stop_signal() != 0 && stop_signal() != SIGPIPE;
  if (interrupted || !output_errors.empty()) {
    // stderr gets what matters when stdout is lost, redirected or cut short:
    // what ran, the seeds, every failure's token, what was saved.
    std::cerr << "capcheck: " << (interrupted ? std::string("interrupted by ") + signal_name(stop_signal())
                                              : std::string("run incomplete"))
              << "; " << summary.substr(9) << '\n';
    for (const RunResult& result : results) {
      std::cerr << fmt::format("  {} seed {}: {} ({} case(s))\n", result.property, result.seed,
                               result_word(result), result.cases_run());
      if (!result.passed) {
        std::cerr << "    reproduce: "
                  << reproduce_command(*result.counterexample, context, result.property)
                  << '\n';
      }
    }
    for (const auto& path : saved) std::cerr << "  regression appended to " << path << '\n';
    for (const auto& error : output_errors) std::cerr << "capcheck: " << error << '\n';
  }
  if (interrupted) return 128 + stop_signal();
  if (!output_errors.empty()) return static_cast<int>(ExitCode::kIncomplete);
  if (violated || runs_failed) return static_cast<int>(ExitCode::kPropertyViolated);
  if (without_cases && !options.allow_no_cases) return static_cast<int>(ExitCode::kIncomplete);
  return 0;
}

}  // namespace capcheck::cli
