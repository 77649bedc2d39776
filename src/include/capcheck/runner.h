// Runs one property over generated scenarios with RapidCheck, and returns the
// shrunk counterexample as a Scenario (not just RapidCheck's printout), so
// every runner can print a token that reproduces it on any backend.
#pragma once

#include <atomic>
#include <functional>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "capcheck/instance.h"
#include "capcheck/properties.h"
#include "capcheck/generators.h"

namespace capcheck {

/// How a case came to run.
enum class CaseOrigin : std::uint8_t { kRegression, kGenerate, kShrink, kFuzz };
/// "regression", "generate", "shrink", "fuzz".
const char* case_origin_name(CaseOrigin origin);

/// One case, as seen by a RunObserver.
struct CaseEvent {
  std::string_view property;
  CaseOrigin origin = CaseOrigin::kGenerate;
  const Scenario* scenario = nullptr;
  /// Null in before_case().
  const Verdict* verdict = nullptr;
  double seconds = 0.0;
};

/// Sees every case before and after it runs (in-flight token, JSON lines).
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void before_case(const CaseEvent& event) { (void)event; }
  virtual void after_case(const CaseEvent& event) { (void)event; }
};

/// Cases per RapidCheck batch (batch k runs with seed + k).
inline constexpr int kCasesPerBatch = 1000;
/// Default limit on shrink candidates tried after the first failure.
inline constexpr int kShrinkTriesMaxDefault = 10000;

struct RunConfig {
  /// Generated cases to pass before the property is taken to hold.
  int cases = 1000;
  /// Batch k of kCasesPerBatch cases runs with seed + k.
  std::uint64_t seed = 0;
  GenOptions gen;
  /// The scenarios to generate (a subject's own generator, or a
  /// transformation of gen_scenario); empty: gen_scenario(gen). Shrinking
  /// follows the generator's own shrinks.
  std::optional<rc::Gen<Scenario>> generator;
  /// Stop after this many seconds (0: no limit), regressions included; checked
  /// before every case. A failure being shrunk keeps the smallest case so far.
  double seconds_max = 0.0;
  /// When set and true (a signal handler sets it), stop as at the deadline.
  const std::atomic<bool>* stop = nullptr;
  /// Stop shrinking after this many candidates; the smallest failure so far is reported.
  int shrink_tries_max = kShrinkTriesMaxDefault;
  /// Regression scenarios replayed (under gen.protocol / gen.mutant) before generating.
  std::vector<Scenario> regressions;
  RunObserver* observer = nullptr;
  /// Which batches this run owns (null: all): a batch it does not own is
  /// skipped with its cases (`capcheck run --shard`); the regressions run
  /// with batch 0.
  std::function<bool(std::uint64_t batch)> owns_batch;
};

struct RunResult {
  std::string property;
  std::uint64_t seed = 0;
  /// Generated cases that passed before a failure (or all of them).
  int cases_passed = 0;
  /// Regression scenarios replayed and passed.
  int regressions_passed = 0;
  bool passed = true;
  double seconds = 0.0;
  /// True when seconds_max ended the run before `cases` passed.
  bool stopped_by_deadline = false;
  /// True when `stop` ended the run before `cases` passed.
  bool stopped_by_request = false;
  /// Generated cases of the batches another shard owns (RunConfig::owns_batch).
  int cases_other_shards = 0;
  /// Cases that ran (regressions, generated, the failing one; not shrinks).
  /// Zero means the property was not tested at all: not a pass.
  int cases_run() const {
    return cases_passed + regressions_passed + (passed ? 0 : 1);
  }
  /// Shrinks tried and accepted (each accepted one still failed).
  int shrinks_tried = 0;
  int shrinks_accepted = 0;
  /// True when shrinking hit shrink_tries_max.
  bool shrink_budget_exhausted = false;
  /// How the failing case was found (regression replay or generation).
  CaseOrigin found_by = CaseOrigin::kGenerate;
  /// The minimal failing scenario and its verdict, when the property failed.
  std::optional<Scenario> counterexample;
  Verdict verdict;
};

/// Replays `config.regressions`, then runs `property` for `config.cases`
/// generated scenarios, shrinking the first failure. The subjects are
/// guarded (guard_subjects): an exception of any type the subject throws is a
/// failed verdict naming it. A device failure (BackendError
/// unavailable/device), usage and internal errors propagate.
RunResult run_property(Subjects& subjects, const PropertyInfo& property, const RunConfig& config);

/// Note [lockstep]: `properties` run with one config (one seed) see the same
/// scenarios. run_lockstep checks each scenario with every property in turn,
/// so that a property beginning as the one before it did reuses its capture
/// (Subjects::captured). When every property passes every case, the results
/// are run_property's for each (the same cases; `seconds` is each property's
/// own time plus an equal share of generation's). When any case fails, or a regression does, it returns nothing
/// and the caller runs each property with run_property, which finds and
/// shrinks the failure exactly as alone. `config.owns_batch` must be empty.
std::optional<std::vector<RunResult>> run_lockstep(Subjects& subjects,
                                                   const std::vector<const PropertyInfo*>& properties,
                                                   const RunConfig& config);

/// The seed a property runs with under CI=true: derived from its name, stable
/// across machines and runs.
std::uint64_t ci_seed(std::string_view property_name);

}  // namespace capcheck
