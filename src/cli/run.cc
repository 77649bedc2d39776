// capcheck run: every selected property over generated scenarios, a table,
// then each failure with its report, regression drafts and, with
// --regressions, the new failure appended.
#include <fmt/core.h>

#include <iostream>
#include <random>

#include "capcheck/harness.h"
#include "capcheck/errors.h"
#include "capcheck/hash.h"
#include "capcheck/registry.h"
#include "capcheck/regressions.h"
#include "capcheck/report.h"
#include "capcheck/token.h"
#include "capcheck/trtllm_subject.h"
#include "case_log.h"
#include "commands.h"

namespace capcheck::cli {

namespace {

// A ready-to-paste regression: the token line for a regression file, and a
// GoogleTest that pins the case under the correct protocol.
void print_regression_draft(const RunResult& failure, const Scenario& scenario,
                            const std::string& backend) {
  const std::string token = encode_token(scenario);
  std::cout << "regression draft (a line for `capcheck run --regressions DIR`):\n"
            << "  # " << failure.property << " protocol=" << protocol_name(scenario.protocol)
            << " mutant=" << mutant_name(scenario.mutant) << " found " << today() << '\n'
            << "  " << token << '\n'
            << "regression test draft (GoogleTest; holds once the bug is fixed):\n"
            << "  TEST(Regression, " << failure.property << "_" << std::hex
            << (fnv1a64(token) & 0xffffffu) << std::dec << ") {\n"
            << "    capcheck::Scenario s = capcheck::decode_token(\"" << token << "\");\n"
            << "    s.protocol = capcheck::Protocol::kReference;  // the fixed protocol\n"
            << "    capcheck::Harness harness(capcheck::make_backend(\"" << backend << "\"), capcheck::make_trtllm_subject);\n"
            << "    EXPECT_TRUE(capcheck::check_property(capcheck::find_property(\""
            << failure.property << "\"), harness, s).passed);\n"
            << "  }\n";
}

// "  (+3 regressions)": how many regression scenarios this property replayed.
std::string regressions_note(const RunResult& result) {
  const int replayed =
      result.regressions_passed + (result.found_by == CaseOrigin::kRegression ? 1 : 0);
  if (replayed == 0) return "";
  return fmt::format("  (+{} regression{})", replayed, replayed == 1 ? "" : "s");
}

}  // namespace

int run_command(const CommonOptions& common, const RunOptions& options) {
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
  auto properties = select_properties(common.properties);
  if (!options.regressions_dir.empty()) {
    for (auto& entry : load_regressions(options.regressions_dir)) {
      config.regressions.push_back(std::move(entry.scenario));
    }
  }
  Harness harness(make_backend(common.backend), make_trtllm_subject);
  add_peers(harness, common.backend, properties, !common.properties.empty());
  cli::CaseLog log(options.in_flight_path == "auto"   ? cli::default_in_flight_path()
                   : options.in_flight_path == "none" ? ""
                                                      : options.in_flight_path,
                   options.json_path, options.case_timeout_seconds, common.backend);
  config.observer = &log;
  config.seconds_max = options.seconds_max / static_cast<double>(properties.size());

  const bool ci = ci_mode();
  std::random_device entropy;
  std::vector<std::uint64_t> seeds;
  for (const PropertyInfo* property : properties) {
    seeds.push_back(options.seed ? *options.seed
                    : ci         ? ci_seed(property->name)
                                 : (static_cast<std::uint64_t>(entropy()) << 32) ^ entropy());
  }
  std::cout << fmt::format(
      "capcheck run: backend={} protocol={} mutant={} draft_loop={} capture={} cases={} "
      "seeds={}\n",
      common.backend, options.protocol, options.mutant, options.draft_loop, options.capture,
      options.cases,
      options.seed ? "fixed (--seed)" : ci ? "derived from property names (CI=true)" : "random");
  if (!config.regressions.empty()) {
    std::cout << fmt::format("regressions: {} scenario(s) from {} replayed first\n",
                             config.regressions.size(), options.regressions_dir);
  }
  if (!log.in_flight_path().empty()) {
    std::cout << "in-flight token: " << log.in_flight_path()
              << " (holds the running case; left behind only if capcheck dies)\n";
  }
  std::cout << fmt::format("{:<38} {:>20} {:>13} {:<9} {:>9} {:>10}\n", "property", "seed",
                           "cases", "result", "time_s", "cases/s");
  int violated = 0;
  std::vector<RunResult> failures;
  for (std::size_t i = 0; i < properties.size(); ++i) {
    config.seed = seeds[i];
    const RunResult result = run_property(harness, *properties[i], config);
    const bool failed_generated = !result.passed && result.found_by != CaseOrigin::kRegression;
    const int run_cases = result.cases_passed + (failed_generated ? 1 : 0);
    const int all_cases = run_cases + result.regressions_passed + (result.passed ? 0 : 1) -
                          (failed_generated ? 1 : 0);
    std::cout << fmt::format("{:<38} {:>20} {:>13} {:<9} {:>9.3f} {:>10.0f}{}\n", result.property,
                             result.seed, fmt::format("{}/{}", run_cases, options.cases),
                             result.passed ? "passed" : "VIOLATED", result.seconds,
                             result.seconds > 0 ? all_cases / result.seconds : 0.0,
                             regressions_note(result) +
                                 (result.stopped_by_deadline ? "  (stopped by --max-seconds)" : ""));
    std::cout.flush();
    if (!result.passed) {
      ++violated;
      failures.push_back(result);
    }
  }
  for (const RunResult& failure : failures) {
    std::cout << fmt::format(
        "\n--- {} violated (seed {}, found by {} after {} passing case(s); shrunk in {} step(s), "
        "{} tried{})\n",
        failure.property, failure.seed, case_origin_name(failure.found_by), failure.cases_passed,
        failure.shrinks_accepted, failure.shrinks_tried,
        failure.shrink_budget_exhausted ? ", stopped by --shrink-budget" : "");
    std::cout << failure_report(failure.verdict, *failure.counterexample, common.backend);
    print_regression_draft(failure, *failure.counterexample, common.backend);
    if (!options.regressions_dir.empty() && failure.found_by != CaseOrigin::kRegression) {
      Scenario kept = *failure.counterexample;
      const std::string path = append_regression(
          options.regressions_dir, kept,
          fmt::format("{} protocol={} mutant={} found {}", failure.property,
                      protocol_name(kept.protocol), mutant_name(kept.mutant), today()));
      std::cout << "appended to " << path << '\n';
    }
  }
  std::cout << fmt::format("\nsummary: {} propert{} run, {} passed, {} violated\n",
                           properties.size(), properties.size() == 1 ? "y" : "ies",
                           properties.size() - violated, violated);
  return violated ? static_cast<int>(ExitCode::kPropertyViolated) : 0;
}

}  // namespace capcheck::cli
