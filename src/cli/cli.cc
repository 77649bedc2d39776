// capcheck: run capture-correctness properties, reproduce a failing case from
// its token, check a hand-written scenario, simulate the engine, list what
// this build can do. This file parses the command line; each command lives
// in its own file (commands.h). The same command line runs in the capcheck
// executable (main.cc) and in the Python module (`python3 -m capcheck`).
#include <CLI/CLI.hpp>
#include <rapidcheck/detail/Configuration.h>

#include <iostream>
#include <set>
#include <sstream>

#include "capcheck/engine_run.h"
#include "capcheck/errors.h"
#include "capcheck/token.h"
#include "commands.h"

namespace capcheck::cli {
namespace {

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
      ->transform(decimal(1, kCasesMax));
  run->add_option("--seed,-s", run_options.seed,
                  "RapidCheck seed (default: random; derived from the property name under CI=true)")
      ->transform(unsigned_integer());
  run->add_option("--batch-size-max", ranges.batch_size_max, "largest generated batch")
      ->default_val(64)->transform(decimal(1, kBatchSizeMax));
  run->add_option("--draft-len-max", ranges.draft_len_max, "largest generated draft length")
      ->default_val(4)->transform(decimal(0, kDraftLenMax));
  run->add_option("--warmups-max", ranges.warmups_max, "largest generated warmup count")
      ->default_val(4)->transform(decimal(0, kWarmupsMax - 1));
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
      ->check(duration(1e9));
  run->add_option("--shrink-budget", run_options.shrink_tries_max,
                  "most shrink candidates tried per failure")
      ->default_val(kShrinkTriesMaxDefault)
      ->transform(decimal(0, 100000000));
  run->add_flag("--allow-no-cases", run_options.allow_no_cases,
               "exit 0 even when a property ran no case (its share of --max-seconds was too small)");
  run->add_option("--json", run_options.json_path, "write one JSON line per case to this file");
  run->add_option("--shard", run_options.shard,
                  "I/N: run the I-th of N deterministic parts (property x batch of 1000 cases); "
                  "N runs with I = 1..N check exactly the cases of one run (fixed seeds: --seed or "
                  "CI=true)");
  run->add_option("--jobs,-j", run_options.jobs,
                  "worker processes, each with its own backend and subject (results, seeds and "
                  "tokens do not depend on it)")
      ->default_val(1)
      ->transform(decimal(1, 256));
  run->add_option("--worker", run_options.worker, "")->group("");  // a --jobs worker: J/N
  run->add_option("--worker-seed", run_options.worker_seeds, "")->group("");
  run->add_option("--in-flight", run_options.in_flight_path,
                  "file holding the token of the running case: a new path (never an existing "
                  "file), 'auto' (in a private temporary directory) or 'none'")
      ->default_val("auto");
  run->add_option("--case-timeout", run_options.case_timeout_seconds,
                  "seconds after which a case is reported as a hang (0: never)")
      ->default_val(60.0)
      ->check(duration(1e6));

  std::string token;
  bool print_json = false;
  auto* reproduce = app.add_subcommand("reproduce", "re-run exactly the scenario (or engine run) of a token");
  reproduce->add_option("token", token,
                        "a cc2: (or cc1:) scenario token printed by a failing run, or a ccr1: "
                        "run token printed by a failing simulate or stateful suite")
      ->required();
  add_common(reproduce, reproduce_common);
  reproduce->add_flag("--print-json", print_json, "also print the scenario as JSON");
  bool dump = false;
  const char* dump_help =
      "first print every persistent and static buffer after each phase of a capture, its first "
      "replay and an eager forward, and the vectors each model step computed with (op-level "
      "subjects)";
  reproduce->add_flag("--dump", dump, dump_help);
  std::string reproduce_json, check_json;
  const char* json_help = "also write the scenario, every verdict (with its mismatch and notes) "
                          "and the --dump to this file as one JSON document";
  reproduce->add_option("--json", reproduce_json, json_help);

  std::string scenario_file;
  auto* check = app.add_subcommand("check", "run properties on a scenario written as JSON");
  check->add_option("--scenario", scenario_file, "scenario JSON file")->required();
  add_common(check, check_common);
  check->add_flag("--dump", dump, dump_help);
  check->add_option("--json", check_json, json_help);

  SimulateOptions sim_options;
  CommonOptions simulate_common;
  auto* simulate = app.add_subcommand(
      "simulate", "run the engine simulator; check every capture and graph iteration");
  simulate->add_option("--seed,-s", sim_options.seed, "seed of arrivals and acceptance")
      ->transform(unsigned_integer());
  simulate->add_option("--iterations,-n", sim_options.iterations, "engine iterations")
      ->transform(decimal(1, 10000000));
  simulate->add_option("--protocol", sim_options.protocol, "capture protocol");
  simulate->add_option("--mutant", sim_options.mutant, "subject mutant");
  simulate->add_option("--capture", sim_options.capture,
                       "capture policy: startup, lazy or startup-only");
  simulate->add_option("--draft-len", sim_options.draft_len, "draft length (0: no speculative decoding)")
      ->transform(decimal(0, kDraftLenMax));
  simulate->add_option("--draft-loop", sim_options.draft_loop, "draft loop in the forward: on or off")
      ->check(one_of({"on", "off"}));
  simulate->add_option("--max-batch-size", sim_options.max_batch_size, "scheduler limit")
      ->transform(decimal(1, kBatchSizeMax));
  simulate->add_option("--max-num-tokens", sim_options.max_num_tokens, "scheduler limit")
      ->transform(decimal(1, kTokensMax));
  simulate->add_option("--shrink-candidates", sim_options.shrink_candidates,
                       "most candidate runs tried when shrinking a failing run (0: no shrinking)")
      ->transform(decimal(0, 1000000));
  add_common(simulate, simulate_common, /*properties=*/false);

  std::vector<std::string> list_plugins;
  auto* list = app.add_subcommand("list", "list subjects, backends, protocols, mutants and properties");
  list->add_option("--plugin", list_plugins, "also list the subjects this shared library registers");

  MutantsOptions mutants_options;
  CommonOptions mutants_common;
  auto* mutants = app.add_subcommand(
      "mutants", "the kill matrix: every protocol and mutant against every property");
  add_common(mutants, mutants_common);
  mutants->add_option("--cases,-n", mutants_options.cases, "generated cases per cell")
      ->default_val(1000)
      ->transform(decimal(1, kCasesMax));
  mutants->add_option("--seed,-s", mutants_options.seed, "RapidCheck seed of every cell")
      ->default_val(1)
      ->transform(unsigned_integer());
  auto* as_json = mutants->add_flag("--json", mutants_options.json, "print the matrix as JSON");
  mutants->add_flag("--markdown", mutants_options.markdown, "print the matrix as a Markdown table")
      ->excludes(as_json);

  const std::set<std::string> commands = {"run", "reproduce", "check", "simulate", "list", "mutants"};
  if (argc > 1 && argv[1][0] != '-' && commands.count(argv[1]) == 0) {
    throw UsageError(std::string("unknown command '") + argv[1] +
                     "'; commands: run, reproduce, check, simulate, list, mutants (see `capcheck --help`)");
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
    if (is_run_token(token)) {
      if (print_json || dump || !reproduce_json.empty() || !reproduce_common.properties.empty()) {
        throw UsageError("--print-json, --dump, --json and --property read a scenario token (cc2:); a "
                         "run token (ccr1:) replays the run's own checks");
      }
      return reproduce_run(reproduce_common, token);
    }
    const DecodedToken decoded = decode_subject_token(token);
    return check_scenario(reproduce_common, decoded.scenario, &decoded, print_json, dump,
                          reproduce_json);
  }
  if (check->parsed()) {
    return check_scenario(check_common, from_json(read_file(scenario_file)), nullptr, false, dump,
                          check_json);
  }
  if (simulate->parsed()) return simulate_command(simulate_common, sim_options);
  if (list->parsed()) return list_command(list_plugins);
  if (mutants->parsed()) return mutants_command(mutants_common, mutants_options);
  return static_cast<int>(ExitCode::kUsage);
}


}  // namespace

int run_cli(int argc, char** argv, bool install_signals) {
  // RapidCheck announces its (unused, random) default seed on stderr the first
  // time its configuration loads; capcheck prints the seeds it really uses.
  {
    std::ostringstream discard;
    auto* saved = std::cerr.rdbuf(discard.rdbuf());
    rc::detail::configuration();
    std::cerr.rdbuf(saved);
  }
  clear_stop();
  if (install_signals) install_signal_handlers();
  set_invocation(argc, argv, install_signals);
  try {
    return main_impl(argc, argv);
  } catch (const OutputError& e) {
    std::cerr << "capcheck: " << e.what() << '\n';
    return static_cast<int>(ExitCode::kIncomplete);
  } catch (const std::bad_alloc&) {
    std::cerr << "capcheck: out of memory (an input or a scenario too large for this machine's "
                 "memory limit)\n";
    return static_cast<int>(ExitCode::kInternal);
  } catch (const UsageError& e) {
    std::cerr << "capcheck: " << e.what() << '\n';
    return static_cast<int>(ExitCode::kUsage);
  } catch (const BackendError& e) {
    std::cerr << "capcheck: backend failure: " << e.what() << '\n';
    return static_cast<int>(ExitCode::kBackend);
  } catch (const std::exception& e) {
    std::cerr << "capcheck: internal error: " << e.what() << '\n';
    return static_cast<int>(ExitCode::kInternal);
  }
}

}  // namespace capcheck::cli
