// The pieces the capcheck commands share: options, property selection,
// peers, validators. One file per command: run.cc, reproduce.cc (reproduce
// and check), simulate.cc, list.cc, mutants.cc; main.cc parses the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <iosfwd>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capcheck/engine_run.h"
#include "capcheck/generators.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/runner.h"
#include "capcheck/report.h"
#include "capcheck/scenario.h"
#include "capcheck/subject_registry.h"
#include "capcheck/token.h"

namespace capcheck::cli {

inline constexpr int kCasesMax = 100000000;

struct CommonOptions {
  /// Empty until resolved: the subject's first device (sim for trtllm,
  /// emulator for a LibTorch subject).
  std::string backend;
  /// Empty until resolved: the token's subject, else trtllm.
  std::string subject;
  /// --option NAME=VALUE, as given.
  std::vector<std::string> options;
  /// --plugin PATH, as given.
  std::vector<std::string> plugins;
  std::vector<std::string> properties;
};

/// Loads CAPCHECK_PLUGIN_PATH and every --plugin, then resolves the subject:
/// --subject, else the token's (when `token` names one), else trtllm; its
/// options: the token's, overridden by --option, completed by defaults; the
/// backend: --backend, else the subject's first device. UsageError (exit 2)
/// when --subject names another subject than the token, naming both.
const SubjectEntry& resolve_subject(CommonOptions& common, const DecodedToken* token,
                                    SubjectOptions* options);

/// What a command runs on: the resolved subject's guarded Subjects, and the
/// context its reports print (subject, options, plugin, backend, fields).
struct OpenSubjects {
  const SubjectEntry* entry = nullptr;
  std::unique_ptr<Subjects> subjects;
  /// What `subjects` guards: a Harness for an op-level subject.
  Subjects* unguarded = nullptr;
  CaseContext context;
  Subjects& get() { return *subjects; }
};
/// A factory of fresh subjects of `common`'s resolved subject (after
/// open_subjects), one set per call: what an engine run replays on.
SubjectsFactory fresh_subjects(const CommonOptions& common, const DecodedToken* token = nullptr);
/// Resolves the subject (resolve_subject) and builds its subjects; a
/// Harness (an op-level subject) gets its peers when backends_agree is
/// selected, which is dropped with a note for a subject with one device per
/// run (refused when named).
OpenSubjects open_subjects(CommonOptions& common, std::vector<const PropertyInfo*>& properties,
                           const DecodedToken* token = nullptr);

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
  bool allow_no_cases = false;
  /// --shard I/N: this run owns the units (property, batch of
  /// kCasesPerBatch cases) whose index modulo N is I-1; "" for all.
  std::string shard;
  /// --jobs N: worker processes (jobs.cc).
  int jobs = 1;
  /// --worker J/N (internal): this process is worker J of N of a --jobs run,
  /// with its parent's seeds (--worker-seed, one per property).
  std::string worker;
  std::vector<std::string> worker_seeds;
};

/// The units of a run: property p's batch b is unit p * batches + b.
struct UnitPlan {
  std::uint64_t batches = 1;
  std::uint64_t shard_index = 1, shard_count = 1;
  int cases = 0;
  /// The unit belongs to this run's --shard part.
  bool in_shard(std::uint64_t unit) const;
};

/// The command line to start workers with (run_cli's); `native`: this is the
/// capcheck executable (not the Python module running a command line).
void set_invocation(int argc, char** argv, bool native);
/// A --jobs worker: runs the units its parent sends on standard input and
/// prints one JSON line per unit.
int run_worker_units(Subjects& subjects, const std::vector<const PropertyInfo*>& properties,
                     RunConfig config, const std::vector<std::uint64_t>& seeds,
                     const UnitPlan& plan);
/// Starts `jobs` workers and merges their units into one result per property,
/// as one process would have found them (Note [workers are processes]);
/// what went wrong with a worker is appended to `errors`.
std::vector<RunResult> run_in_workers(Subjects& subjects,
                                      const std::vector<const PropertyInfo*>& properties,
                                      const std::vector<std::uint64_t>& seeds,
                                      const UnitPlan& plan, int jobs, double seconds_max,
                                      std::vector<std::string>* errors);

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
  /// Most candidate runs the shrinker of a failing run tries.
  int shrink_candidates = 10000;
};

struct MutantsOptions {
  int cases = 1000;
  std::uint64_t seed = 1;
  bool json = false;
  bool markdown = false;
};

/// SIGINT/SIGTERM/SIGPIPE request a stop; SIGXFSZ ignored (common.cc).
void install_signal_handlers();
/// Set by those signals (and request_stop); runs stop at a case boundary.
const std::atomic<bool>* stop_flag();
/// The signal that requested the stop (0: none, or request_stop()).
int stop_signal();
void request_stop();
/// Clears a stop request (a new command line in the same process).
void clear_stop();
/// "" when standard output took everything written so far (flushed);
/// otherwise why not (a full disk, a closed pipe).
std::string stdout_error();

/// True under CI=true.
bool ci_mode();
/// The properties named (UsageError for an unknown one), or every non-canary one.
std::vector<const PropertyInfo*> select_properties(const std::vector<std::string>& names);
/// Gives `harness` its peers when backends_agree is selected (see common.cc).
void add_peers(Harness& harness, const std::string& backend,
               std::vector<const PropertyInfo*>& properties, bool named);
/// Today's date (UTC), YYYY-MM-DD.
std::string today();
/// The whole scenario file, at most kScenarioJsonBytesMax bytes; UsageError
/// when it cannot be read, is a directory or is too large.
std::string read_file(const std::string& path);
/// "--x: must be one of a, b, c (got 'y')".
CLI::Validator one_of(std::vector<std::string> allowed);
/// A decimal integer from 0 to 2^64-1 (a transform: leading zeros dropped).
CLI::Validator unsigned_integer();
/// A decimal integer in [min, max]: never octal or hex, never saturated (a
/// transform: leading zeros dropped).
CLI::Validator decimal(std::uint64_t min, std::uint64_t max);
/// A finite number of seconds in [0, max] (no nan, no inf).
CLI::Validator duration(double max);
/// --subject, --option, --plugin, --backend and --property.
void add_common(CLI::App* command, CommonOptions& common, bool properties = true);
/// "subject" of a RapidCheck/report line: "trtllm" or "vllm-style bug=pad-slot".
inline std::string subject_text(const CaseContext& context) { return describe(context.subject); }

/// The commands; each returns the process exit code.
int run_command(CommonOptions common, const RunOptions& options);
/// reproduce (`token` given: its subject and options) and check (`token` null).
int check_scenario(CommonOptions common, const Scenario& scenario, const DecodedToken* token,
                   bool print_json, bool dump = false, const std::string& json_path = "");
/// --dump of check and reproduce (dump.cc): the op-level subject's buffers
/// after every phase of a capture, its first replay and an eager forward, and
/// what each model step computed with, as a list of events in order ({"after":
/// phase, "buffers": [{"name", "values"}]} and {"run", "returned_logits",
/// "model_steps": [{"phase", "mode", "input_ids", "position_ids", "seq_ids",
/// "kv_lens"}]}; a value overwritten since it was read is null). UsageError
/// for another kind of subject.
nlohmann::json collect_dump(Subjects* unguarded, const std::string& subject,
                            const Scenario& scenario);
/// The dump as text: each buffer up to its last non-zero element, "?" for null.
void print_dump(const nlohmann::json& events, std::ostream& out);
int simulate_command(CommonOptions common, const SimulateOptions& options);
/// capcheck reproduce of a `ccr1:` run token (simulate.cc).
int reproduce_run(CommonOptions common, const std::string& token);
int list_command(const std::vector<std::string>& plugins);
/// The kill matrix of the protocol and mutant catalogue (mutants.cc).
int mutants_command(CommonOptions common, const MutantsOptions& options);

}  // namespace capcheck::cli
