// capcheck: run capture-correctness properties, reproduce a failing case from
// its token, check a hand-written scenario, list what this build can do.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fmt/core.h>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "capcheck/backends.h"
#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/token.h"
#include "rc_runner.h"
#include <rapidcheck/detail/Configuration.h>

namespace capcheck {
namespace {

constexpr int kCasesMax = 100000000;

struct CommonOptions {
  std::string backend = "sim";
  std::vector<std::string> properties;
};

bool ci_mode() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

std::vector<const PropertyInfo*> select_properties(const std::vector<std::string>& names) {
  std::vector<const PropertyInfo*> selected;
  if (names.empty()) {
    for (const auto& p : all_properties()) {
      if (!p.canary) selected.push_back(&p);
    }
    return selected;
  }
  for (const auto& name : names) selected.push_back(&find_property(name));
  return selected;
}

std::string reproduce_command(const Scenario& scenario, const std::string& backend,
                              std::string_view property) {
  std::string command = "capcheck reproduce " + encode_token(scenario);
  if (backend != "sim") command += " --backend " + backend;
  command += " --property " + std::string(property);
  return command;
}

void print_failure_details(const Verdict& verdict, const Scenario& scenario,
                           const std::string& backend) {
  std::cout << "scenario: " << summarize(scenario) << '\n';
  std::cout << format_verdict(verdict);
  std::cout << "reproduce: " << reproduce_command(scenario, backend, verdict.property) << '\n';
}

int run_command(const CommonOptions& common, const std::string& protocol_text,
                const std::string& mutant_text, int cases, const std::optional<std::uint64_t>& seed,
                const GenOptions& gen_ranges) {
  RunConfig config;
  config.cases = cases;
  config.gen = gen_ranges;
  config.gen.protocol = parse_protocol(protocol_text);
  config.gen.mutant = parse_mutant(mutant_text);
  validate(config.gen);
  const auto properties = select_properties(common.properties);
  Harness harness(make_backend(common.backend));

  const bool ci = ci_mode();
  std::random_device entropy;
  std::cout << fmt::format("capcheck run: backend={} protocol={} mutant={} draft_loop={} capture={} "
                           "cases={} seeds={}\n",
                           common.backend, protocol_text, mutant_text,
                           gen_ranges.draft_loop ? "on" : "off",
                           gen_ranges.capture == CaptureKind::kAny       ? "any"
                           : gen_ranges.capture == CaptureKind::kStartup ? "startup"
                                                                        : "runtime",
                           cases,
                           seed ? "fixed (--seed)" : ci ? "derived from property names (CI=true)"
                                                        : "random");
  std::cout << fmt::format("{:<38} {:>20} {:>13} {:<9} {:>9} {:>10}\n", "property", "seed",
                           "cases", "result", "time_s", "cases/s");
  int violated = 0;
  std::vector<RunResult> failures;
  for (const PropertyInfo* property : properties) {
    config.seed = seed ? *seed
                       : ci ? ci_seed(property->name)
                            : (static_cast<std::uint64_t>(entropy()) << 32) ^ entropy();
    const RunResult result = run_property(harness, *property, config);
    const int run_cases = result.cases_passed + (result.passed ? 0 : 1);
    std::cout << fmt::format("{:<38} {:>20} {:>13} {:<9} {:>9.3f} {:>10.0f}\n", result.property,
                             result.seed, fmt::format("{}/{}", run_cases, cases),
                             result.passed ? "passed" : "VIOLATED", result.seconds,
                             result.seconds > 0 ? run_cases / result.seconds : 0.0);
    std::cout.flush();
    if (!result.passed) {
      ++violated;
      failures.push_back(result);
    }
  }
  for (const RunResult& failure : failures) {
    std::cout << fmt::format(
        "\n--- {} violated (seed {}, after {} passing case(s); shrunk in {} step(s), {} tried)\n",
        failure.property, failure.seed, failure.cases_passed, failure.shrinks_accepted,
        failure.shrinks_tried);
    print_failure_details(failure.verdict, *failure.counterexample, common.backend);
  }
  std::cout << fmt::format("\nsummary: {} propert{} run, {} passed, {} violated\n",
                           properties.size(), properties.size() == 1 ? "y" : "ies",
                           properties.size() - violated, violated);
  return violated ? static_cast<int>(ExitCode::kPropertyViolated) : 0;
}

// Runs the selected properties once on `scenario` (reproduce and check).
int check_scenario(const CommonOptions& common, const Scenario& scenario, bool print_json) {
  const auto properties = select_properties(common.properties);
  Harness harness(make_backend(common.backend));
  std::cout << "backend: " << common.backend << '\n';
  std::cout << "scenario: " << summarize(scenario) << '\n';
  if (print_json) std::cout << to_json(scenario) << '\n';
  int violated = 0;
  for (const PropertyInfo* property : properties) {
    const Verdict verdict = check_property(*property, harness, scenario);
    std::cout << format_verdict(verdict);
    if (!verdict.passed) {
      ++violated;
      std::cout << "reproduce: " << reproduce_command(scenario, common.backend, verdict.property)
                << '\n';
    }
  }
  std::cout << fmt::format("summary: {} propert{} checked, {} passed, {} violated\n",
                           properties.size(), properties.size() == 1 ? "y" : "ies",
                           properties.size() - violated, violated);
  return violated ? static_cast<int>(ExitCode::kPropertyViolated) : 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read scenario file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int list_command() {
  std::cout << "backends:\n";
  for (const auto& b : list_backends()) {
    std::cout << fmt::format("  {:<8} {:<13} {}\n", b.name,
                             b.available ? "available" : b.built ? "unavailable" : "not built",
                             b.detail);
  }
  std::cout << "protocols:\n";
  for (int i = 0; i < kProtocolCount; ++i) {
    std::cout << "  " << protocol_name(static_cast<Protocol>(i)) << '\n';
  }
  std::cout << "mutants:\n";
  for (int i = 0; i < kMutantCount; ++i) {
    std::cout << "  " << mutant_name(static_cast<Mutant>(i)) << '\n';
  }
  std::cout << "properties:\n";
  for (const auto& p : all_properties()) {
    std::cout << fmt::format("  {:<38} {}\n", p.name, p.claim);
  }
  return 0;
}

void add_common(CLI::App* command, CommonOptions& common) {
  command->add_option("--backend,-b", common.backend, "backend: sim, torch or cuda (see `list`)")
      ->default_val("sim");
  command->add_option("--property,-p", common.properties,
                      "property to run (repeatable; default: every non-canary property)");
}

int main_impl(int argc, char** argv) {
  CLI::App app{"capcheck: property-based tests of CUDA graph capture in LLM inference engines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "capcheck 0.1.0");

  CommonOptions run_common, reproduce_common, check_common;
  std::string protocol = "reference", mutant = "none";
  int cases = 1000;
  std::optional<std::uint64_t> seed;
  GenOptions ranges;
  auto* run = app.add_subcommand("run", "run properties over generated scenarios");
  add_common(run, run_common);
  run->add_option("--protocol", protocol, "capture protocol: reference, pre-fix, seed-pr, snapshot-restore")
      ->default_val("reference");
  run->add_option("--mutant", mutant, "subject mutant (see `list`)")->default_val("none");
  run->add_option("--cases,-n", cases, "generated cases per property")
      ->default_val(1000)
      ->check(CLI::Range(1, kCasesMax));
  run->add_option("--seed,-s", seed,
                  "RapidCheck seed (default: random; derived from the property name under CI=true)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--batch-size-max", ranges.batch_size_max, "largest generated batch")
      ->default_val(64)->check(CLI::Range(1, kBatchSizeMax));
  run->add_option("--draft-len-max", ranges.draft_len_max, "largest generated draft length")
      ->default_val(4)->check(CLI::Range(0, kDraftLenMax));
  run->add_option("--warmups-max", ranges.warmups_max, "largest generated warmup count")
      ->default_val(4)->check(CLI::Range(0, kWarmupsMax - 1));
  run->add_option("--draft-loop", ranges.draft_loop,
                  "one-model speculative decoding's draft loop in the forward: on or off")
      ->transform(CLI::CheckedTransformer(std::map<std::string, bool>{{"on", true}, {"off", false}}))
      ->default_str("on");
  run->add_option("--capture", ranges.capture,
                  "which captures to generate: any, startup (zero offsets) or runtime (lazy, "
                  "overlap-scheduler offsets)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, CaptureKind>{
          {"any", CaptureKind::kAny}, {"startup", CaptureKind::kStartup},
          {"runtime", CaptureKind::kRuntime}}))
      ->default_str("any");

  std::string token;
  bool print_json = false;
  auto* reproduce = app.add_subcommand("reproduce", "re-run exactly the scenario of a token");
  reproduce->add_option("token", token, "a cc1: token printed by a failing run")->required();
  add_common(reproduce, reproduce_common);
  reproduce->add_flag("--print-json", print_json, "also print the scenario as JSON");

  std::string scenario_file;
  auto* check = app.add_subcommand("check", "run properties on a scenario written as JSON");
  check->add_option("--scenario", scenario_file, "scenario JSON file")->required();
  add_common(check, check_common);

  auto* list = app.add_subcommand("list", "list backends, protocols, mutants and properties");

  const std::set<std::string> commands = {"run", "reproduce", "check", "list"};
  if (argc > 1 && argv[1][0] != '-' && commands.count(argv[1]) == 0) {
    throw UsageError(std::string("unknown command '") + argv[1] +
                     "'; commands: run, reproduce, check, list (see `capcheck --help`)");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "capcheck: " << e.what() << "\n(run `capcheck --help` or `capcheck <command> --help`)\n";
    return static_cast<int>(ExitCode::kUsage);
  }

  if (run->parsed()) return run_command(run_common, protocol, mutant, cases, seed, ranges);
  if (reproduce->parsed()) {
    return check_scenario(reproduce_common, decode_token(token), print_json);
  }
  if (check->parsed()) {
    return check_scenario(check_common, from_json(read_file(scenario_file)), false);
  }
  if (list->parsed()) return list_command();
  return static_cast<int>(ExitCode::kUsage);
}

}  // namespace
}  // namespace capcheck

int main(int argc, char** argv) {
  using capcheck::ExitCode;
  // RapidCheck announces its (unused, random) default seed on stderr the first
  // time its configuration loads; capcheck prints the seeds it really uses.
  {
    std::ostringstream discard;
    auto* saved = std::cerr.rdbuf(discard.rdbuf());
    rc::detail::configuration();
    std::cerr.rdbuf(saved);
  }
  try {
    return capcheck::main_impl(argc, argv);
  } catch (const capcheck::UsageError& e) {
    std::cerr << "capcheck: " << e.what() << '\n';
    return static_cast<int>(ExitCode::kUsage);
  } catch (const capcheck::BackendError& e) {
    std::cerr << "capcheck: backend failure: " << e.what() << '\n';
    return static_cast<int>(ExitCode::kBackend);
  } catch (const std::exception& e) {
    std::cerr << "capcheck: internal error: " << e.what() << '\n';
    return static_cast<int>(ExitCode::kInternal);
  }
}
