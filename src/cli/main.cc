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

#include "capcheck/registry.h"
#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/regressions.h"
#include "capcheck/trtllm_subject.h"
#include "case_log.h"
#include "capcheck/engine_runner.h"
#include <ctime>
#include <algorithm>
#include "capcheck/token.h"
#include "capcheck/runner.h"
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

// backends_agree compares the chosen backend with every other available one.
// When it was not asked for by name and there is no other backend, it is
// dropped with a note instead of failing the run.
void add_peers(Harness& harness, const std::string& backend,
               std::vector<const PropertyInfo*>& properties, bool named) {
  const auto agree = std::find_if(properties.begin(), properties.end(),
                                  [](const PropertyInfo* p) { return p->name == "backends_agree"; });
  if (agree == properties.end()) return;
  const std::vector<std::string> peers = add_available_peers(harness);
  if (!peers.empty()) {
    std::string list;
    for (const auto& p : peers) list += (list.empty() ? "" : ", ") + p;
    std::cout << "backends_agree compares " << backend << " with: " << list << '\n';
  } else if (!named) {
    std::cout << "backends_agree skipped: no backend other than " << backend
              << " is available in this build/machine\n";
    properties.erase(agree);
  }
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

struct RunOptions {
  std::string draft_loop = "on";
  std::string capture = "any";
  std::string protocol = "reference";
  std::string mutant = "none";
  int cases = 1000;
  std::optional<std::uint64_t> seed;
  GenOptions ranges;
  std::string regressions_dir;
  double seconds_max = 0.0;
  int shrink_tries_max = kShrinkTriesMaxDefault;
  std::string json_path;
  std::string in_flight_path = "auto";
  double case_timeout_seconds = 60.0;
};

std::string today() {
  const std::time_t now = std::time(nullptr);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", std::gmtime(&now));
  return text;
}

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
            << (ci_seed(token) & 0xffffffu) << std::dec << ") {\n"
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
    print_failure_details(failure.verdict, *failure.counterexample, common.backend);
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

// Runs the selected properties once on `scenario` (reproduce and check).
int check_scenario(const CommonOptions& common, const Scenario& scenario, bool print_json) {
  auto properties = select_properties(common.properties);
  Harness harness(make_backend(common.backend), make_trtllm_subject);
  std::cout << "backend: " << common.backend << '\n';
  add_peers(harness, common.backend, properties, !common.properties.empty());
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

struct SimulateOptions {
  std::uint64_t seed = 1;
  int iterations = 200;
  std::string protocol = "reference";
  std::string mutant = "none";
  std::string capture = "lazy";
  std::string draft_loop = "on";
  int draft_len = 2;
  int max_batch_size = 8;
  int max_num_tokens = 64;
};

// Runs the engine simulator for `iterations` iterations with requests arriving
// from the seed; one line per iteration, a summary, and on a violation the
// failing iteration's token and the command that replays the whole run.
int simulate_command(const std::string& backend, const SimulateOptions& o) {
  sim::EngineConfig config;
  config.max_batch_size = o.max_batch_size;
  config.max_num_tokens = o.max_num_tokens;
  config.draft_len = o.draft_len;
  config.draft_loop = o.draft_loop == "on" && o.draft_len > 0;
  config.capture = sim::parse_capture_policy(o.capture);
  config.protocol = parse_protocol(o.protocol);
  config.mutant = parse_mutant(o.mutant);
  config.acceptance_seed = o.seed;
  EngineRunner runner(make_backend(backend), config);
  const std::string rerun = fmt::format(
      "capcheck simulate --seed {} --iterations {} --protocol {} --mutant {} --capture {} "
      "--draft-len {} --draft-loop {} --max-batch-size {} --max-num-tokens {} --backend {}",
      o.seed, o.iterations, o.protocol, o.mutant, o.capture, o.draft_len,
      o.draft_loop, o.max_batch_size, o.max_num_tokens, backend);
  std::cout << "capcheck simulate: " << rerun.substr(std::string("capcheck simulate ").size())
            << '\n';
  auto report = [&](const std::vector<Verdict>& failures, const Scenario* scenario) {
    for (const Verdict& v : failures) std::cout << format_verdict(v);
    if (scenario) {
      std::cout << "failing capture as a scenario: capcheck reproduce " << encode_token(*scenario)
                << " --backend " << backend << '\n';
    }
    std::cout << "replay the whole run: " << rerun << '\n';
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
      report(outcome->failures, &outcome->iteration.scenario);
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

// "--x: must be one of a, b, c (got 'y')".
CLI::Validator one_of(std::vector<std::string> allowed) {
  return CLI::Validator(
      [allowed](std::string& value) -> std::string {
        for (const auto& a : allowed) {
          if (value == a) return "";
        }
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return "must be one of " + list + " (got '" + value + "')";
      },
      "");
}

CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!value.empty() && value.size() <= 20 &&
            value.find_first_not_of("0123456789") == std::string::npos) {
          return "";
        }
        return "must be an integer from 0 to 18446744073709551615 (got '" + value + "')";
      },
      "");
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
  RunOptions run_options;
  GenOptions& ranges = run_options.ranges;
  auto* run = app.add_subcommand("run", "run properties over generated scenarios");
  add_common(run, run_common);
  run->add_option("--protocol", run_options.protocol,
                  "capture protocol: reference, pre-fix, seed-pr, snapshot-restore")
      ->default_val("reference");
  run->add_option("--mutant", run_options.mutant, "subject mutant (see `list`)")->default_val("none");
  run->add_option("--cases,-n", run_options.cases, "generated cases per property")
      ->default_val(1000)
      ->check(CLI::Range(1, kCasesMax));
  run->add_option("--seed,-s", run_options.seed,
                  "RapidCheck seed (default: random; derived from the property name under CI=true)")
      ->check(unsigned_integer());
  run->add_option("--batch-size-max", ranges.batch_size_max, "largest generated batch")
      ->default_val(64)->check(CLI::Range(1, kBatchSizeMax));
  run->add_option("--draft-len-max", ranges.draft_len_max, "largest generated draft length")
      ->default_val(4)->check(CLI::Range(0, kDraftLenMax));
  run->add_option("--warmups-max", ranges.warmups_max, "largest generated warmup count")
      ->default_val(4)->check(CLI::Range(0, kWarmupsMax - 1));
  run->add_option("--draft-loop", run_options.draft_loop,
                  "one-model speculative decoding's draft loop in the forward: on or off")
      ->check(one_of({"on", "off"}))
      ->default_val("on");
  run->add_option("--capture", run_options.capture,
                  "which captures to generate: any, startup (zero offsets) or runtime (lazy, "
                  "overlap-scheduler offsets)")
      ->check(one_of({"any", "startup", "runtime"}))
      ->default_val("any");
  run->add_option("--regressions", run_options.regressions_dir,
                  "directory of token files replayed before new cases; new failures are appended");
  run->add_option("--max-seconds", run_options.seconds_max,
                  "time budget of the whole run, shared by the properties (0: none)")
      ->check(CLI::Range(0.0, 1e9));
  run->add_option("--shrink-budget", run_options.shrink_tries_max,
                  "most shrink candidates tried per failure")
      ->default_val(kShrinkTriesMaxDefault)
      ->check(CLI::Range(0, 100000000));
  run->add_option("--json", run_options.json_path, "write one JSON line per case to this file");
  run->add_option("--in-flight", run_options.in_flight_path,
                  "file holding the token of the running case: a path, 'auto' (a temp file) or "
                  "'none'")
      ->default_val("auto");
  run->add_option("--case-timeout", run_options.case_timeout_seconds,
                  "seconds after which a case is reported as a hang (0: never)")
      ->default_val(60.0)
      ->check(CLI::Range(0.0, 1e6));

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

  SimulateOptions sim_options;
  std::string simulate_backend = "sim";
  auto* simulate = app.add_subcommand(
      "simulate", "run the engine simulator; check every capture and graph iteration");
  simulate->add_option("--seed,-s", sim_options.seed, "seed of arrivals and acceptance")
      ->check(unsigned_integer());
  simulate->add_option("--iterations,-n", sim_options.iterations, "engine iterations")
      ->check(CLI::Range(1, 10000000));
  simulate->add_option("--protocol", sim_options.protocol, "capture protocol");
  simulate->add_option("--mutant", sim_options.mutant, "subject mutant");
  simulate->add_option("--capture", sim_options.capture,
                       "capture policy: startup, lazy or startup-only");
  simulate->add_option("--draft-len", sim_options.draft_len, "draft length (0: no speculative decoding)")
      ->check(CLI::Range(0, kDraftLenMax));
  simulate->add_option("--draft-loop", sim_options.draft_loop, "draft loop in the forward: on or off")
      ->check(one_of({"on", "off"}));
  simulate->add_option("--max-batch-size", sim_options.max_batch_size, "scheduler limit")
      ->check(CLI::Range(1, kBatchSizeMax));
  simulate->add_option("--max-num-tokens", sim_options.max_num_tokens, "scheduler limit")
      ->check(CLI::Range(1, kTokensMax));
  simulate->add_option("--backend,-b", simulate_backend, "backend: sim, torch or cuda");

  auto* list = app.add_subcommand("list", "list backends, protocols, mutants and properties");

  const std::set<std::string> commands = {"run", "reproduce", "check", "simulate", "list"};
  if (argc > 1 && argv[1][0] != '-' && commands.count(argv[1]) == 0) {
    throw UsageError(std::string("unknown command '") + argv[1] +
                     "'; commands: run, reproduce, check, simulate, list (see `capcheck --help`)");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "capcheck: " << e.what() << "\n(run `capcheck --help` or `capcheck <command> --help`)\n";
    return static_cast<int>(ExitCode::kUsage);
  }

  if (run->parsed()) return run_command(run_common, run_options);
  if (reproduce->parsed()) {
    return check_scenario(reproduce_common, decode_token(token), print_json);
  }
  if (check->parsed()) {
    return check_scenario(check_common, from_json(read_file(scenario_file)), false);
  }
  if (simulate->parsed()) return simulate_command(simulate_backend, sim_options);
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
