#include "capcheck/runner.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <rapidcheck/detail/TestListener.h>

#include "capcheck/errors.h"
#include "capcheck/hash.h"

namespace capcheck {

namespace {

using Clock = std::chrono::steady_clock;

class ShrinkCounter final : public rc::detail::TestListener {
 public:
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool accepted) override {
    ++tried;
    if (accepted) ++accepted_count;
  }
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
  int tried = 0;
  int accepted_count = 0;
};

// Runs one case: observer before and after, device/internal failures kept
// aside for rethrowing outside RapidCheck (which would take them for failures).
class CaseRunner {
 public:
  CaseRunner(Subjects& subjects, const PropertyInfo& property, RunObserver* observer)
      : subjects_(subjects), property_(property), observer_(observer) {}

  std::optional<Verdict> run(const Scenario& scenario, CaseOrigin origin) {
    CaseEvent event{property_.name, origin, &scenario, nullptr, 0.0};
    if (observer_) observer_->before_case(event);
    const auto start = Clock::now();
    Verdict verdict;
    try {
      verdict = check_property(property_, subjects_, scenario);
    } catch (const std::exception&) {
      // A device failure, bad input, an internal error or any other exception
      // out of a subject ends the run with its own type and message (never a
      // RapidCheck failure without a verdict).
      fatal = std::current_exception();
      return std::nullopt;
    }
    event.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    event.verdict = &verdict;
    if (observer_) observer_->after_case(event);
    return verdict;
  }

  std::exception_ptr fatal;

 private:
  Subjects& subjects_;
  const PropertyInfo& property_;
  RunObserver* observer_;
};

// RapidCheck's parameters for batch `batch` of a run with `remaining` cases
// to go: run_property and run_lockstep generate the same scenarios from them.
rc::detail::TestParams batch_params(const RunConfig& config, std::uint64_t batch, int remaining) {
  rc::detail::TestParams params;
  params.seed = config.seed + batch;
  params.maxSuccess = std::min(remaining, kCasesPerBatch);
  params.maxSize = 100;
  params.maxDiscardRatio = 10;
  return params;
}

}  // namespace

const char* case_origin_name(CaseOrigin origin) {
  switch (origin) {
    case CaseOrigin::kRegression: return "regression";
    case CaseOrigin::kGenerate: return "generate";
    case CaseOrigin::kShrink: return "shrink";
    case CaseOrigin::kFuzz: return "fuzz";
  }
  return "unknown";
}

std::uint64_t ci_seed(std::string_view property_name) {
  return fnv1a64(property_name);
}

RunResult run_property(Subjects& given, const PropertyInfo& property, const RunConfig& config) {
  if (config.cases < 1) throw UsageError("--cases must be at least 1");
  if (config.seconds_max < 0) throw UsageError("--max-seconds must not be negative");
  if (config.shrink_tries_max < 0) throw UsageError("--shrink-budget must not be negative");
  const rc::Gen<Scenario> generator = config.generator ? *config.generator : gen_scenario(config.gen);
  // Note [subject exceptions]: whatever the subject throws becomes a verdict.
  const std::unique_ptr<Subjects> guard = is_guarded(given) ? nullptr : guard_subjects(given);
  Subjects& subjects = guard ? *guard : given;
  CaseRunner runner(subjects, property, config.observer);
  // Explanations only for the verdicts reported (each failure is re-checked).
  struct Explanations {
    Subjects& subjects;
    explicit Explanations(Subjects& s) : subjects(s) { subjects.set_explanations(false); }
    ~Explanations() { subjects.set_explanations(true); }
  } explanations(subjects);
  auto recheck = [&](const Scenario& scenario) {
    subjects.set_explanations(true);
    Verdict v = check_property(property, subjects, scenario);
    subjects.set_explanations(false);
    return v;
  };

  RunResult run;
  run.property = std::string(property.name);
  run.seed = config.seed;
  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  // Checked before every case: the deadline and a stop request end the run
  // at a case boundary (a case in progress finishes).
  auto should_stop = [&] {
    if (config.stop && config.stop->load(std::memory_order_relaxed)) {
      run.stopped_by_request = true;
      return true;
    }
    if (config.seconds_max > 0 && elapsed() >= config.seconds_max) {
      run.stopped_by_deadline = true;
      return true;
    }
    return false;
  };

  // Regressions first, under the protocol and mutant of this run: a case that
  // once broke some protocol must hold under the one being tested.
  const bool owns_regressions = !config.owns_batch || config.owns_batch(0);
  for (Scenario scenario : owns_regressions ? config.regressions : std::vector<Scenario>{}) {
    if (should_stop()) {
      run.seconds = elapsed();
      return run;
    }
    scenario.protocol = config.gen.protocol;
    scenario.mutant = config.gen.mutant;
    const auto verdict = runner.run(scenario, CaseOrigin::kRegression);
    if (runner.fatal) std::rethrow_exception(runner.fatal);
    if (!verdict->passed) {
      run.passed = false;
      run.found_by = CaseOrigin::kRegression;
      run.counterexample = scenario;
      run.verdict = recheck(scenario);
      CAPCHECK_ASSERT(!run.verdict.passed);
      run.seconds = elapsed();
      return run;
    }
    ++run.regressions_passed;
  }

  int remaining = config.cases;
  bool stopped = false;
  for (std::uint64_t batch = 0; remaining > 0 && !stopped; ++batch) {
    if (config.owns_batch && !config.owns_batch(batch)) {
      const int skipped = std::min(remaining, kCasesPerBatch);
      run.cases_other_shards += skipped;
      remaining -= skipped;
      continue;
    }
    std::optional<Scenario> last_failure;
    Verdict last_verdict;
    int shrinks_tried = 0;
    int generated_passed = 0;  // cases that really ran and passed in this batch
    bool budget_exhausted = false;
    auto body = [&] {
      // After a device failure or a stop, the remaining cases of the batch
      // pass without running (and are not counted); a failure being shrunk
      // keeps its smallest case so far.
      if (runner.fatal || stopped) return;
      if (should_stop()) {
        stopped = true;
        return;
      }
      const bool shrinking = last_failure.has_value();
      if (shrinking && ++shrinks_tried > config.shrink_tries_max) {
        budget_exhausted = true;
        return;  // treat further candidates as passing: the last failure stays
      }
      const Scenario scenario = *generator;
      const auto verdict =
          runner.run(scenario, shrinking ? CaseOrigin::kShrink : CaseOrigin::kGenerate);
      if (!verdict) return;
      if (verdict->passed) {
        if (!shrinking) ++generated_passed;
        return;
      }
      last_failure = scenario;
      last_verdict = *verdict;
      RC_FAIL(verdict->message);
    };

    rc::detail::TestMetadata metadata;
    metadata.id = std::string(property.name);
    metadata.description = std::string(property.claim);
    ShrinkCounter counter;
    const auto result = rc::detail::checkProperty(rc::detail::toProperty(body), metadata,
                                                  batch_params(config, batch, remaining), counter);
    if (runner.fatal) std::rethrow_exception(runner.fatal);
    run.shrinks_tried += counter.tried;
    run.shrinks_accepted += counter.accepted_count;

    run.cases_passed += generated_passed;
    if (result.template is<rc::detail::SuccessResult>()) {
      remaining -= result.template get<rc::detail::SuccessResult>().numSuccess;
      continue;
    }
    if (result.template is<rc::detail::FailureResult>()) {
      run.passed = false;
      run.shrink_budget_exhausted = budget_exhausted;
      CAPCHECK_ASSERT(last_failure.has_value());
      run.counterexample = last_failure;
      // Re-check the minimal case so the verdict (and its trace notes) belong to it.
      run.verdict = recheck(*last_failure);
      CAPCHECK_ASSERT(!run.verdict.passed);
      break;
    }
    std::string description = "RapidCheck stopped without a verdict";
    if (result.template is<rc::detail::GaveUpResult>()) {
      description = result.template get<rc::detail::GaveUpResult>().description;
    } else if (result.template is<rc::detail::Error>()) {
      description = result.template get<rc::detail::Error>().description;
    }
    throw InternalError("property " + run.property + ": " + description);
  }
  run.seconds = elapsed();
  return run;
}

std::optional<std::vector<RunResult>> run_lockstep(Subjects& given,
                                                   const std::vector<const PropertyInfo*>& properties,
                                                   const RunConfig& config) {
  CAPCHECK_ASSERT(!config.owns_batch);
  if (config.cases < 1) throw UsageError("--cases must be at least 1");
  const rc::Gen<Scenario> generator = config.generator ? *config.generator : gen_scenario(config.gen);
  const std::unique_ptr<Subjects> guard = is_guarded(given) ? nullptr : guard_subjects(given);
  Subjects& subjects = guard ? *guard : given;
  subjects.set_explanations(false);  // verdicts here only pass or send to run_property
  struct Restore {
    Subjects& subjects;
    ~Restore() { subjects.set_explanations(true); }
  } restore{subjects};
  std::vector<CaseRunner> runners;
  runners.reserve(properties.size());
  std::vector<RunResult> results(properties.size());
  for (std::size_t i = 0; i < properties.size(); ++i) {
    runners.emplace_back(subjects, *properties[i], config.observer);
    results[i].property = std::string(properties[i]->name);
    results[i].seed = config.seed;
  }
  const auto start = Clock::now();
  bool failed = false, stopped = false;
  auto should_stop = [&] {
    const bool requested = config.stop && config.stop->load(std::memory_order_relaxed);
    const bool deadline = config.seconds_max > 0 &&
                          std::chrono::duration<double>(Clock::now() - start).count() >= config.seconds_max;
    for (RunResult& r : results) {
      r.stopped_by_request = r.stopped_by_request || requested;
      r.stopped_by_deadline = r.stopped_by_deadline || (deadline && !requested);
    }
    return requested || deadline;
  };
  // Every property on `scenario`; false when one fails (or a device failure
  // is kept for rethrowing).
  auto check_all = [&](const Scenario& scenario, CaseOrigin origin) {
    for (std::size_t i = 0; i < runners.size(); ++i) {
      const auto case_start = Clock::now();
      const auto verdict = runners[i].run(scenario, origin);
      results[i].seconds += std::chrono::duration<double>(Clock::now() - case_start).count();
      if (!verdict || !verdict->passed) return false;
    }
    return true;
  };
  auto rethrow = [&] {
    for (const CaseRunner& runner : runners) {
      if (runner.fatal) std::rethrow_exception(runner.fatal);
    }
  };
  for (Scenario scenario : config.regressions) {
    if (should_stop()) return results;
    scenario.protocol = config.gen.protocol;
    scenario.mutant = config.gen.mutant;
    if (!check_all(scenario, CaseOrigin::kRegression)) {
      rethrow();
      return std::nullopt;
    }
    for (RunResult& r : results) ++r.regressions_passed;
  }
  int remaining = config.cases;
  for (std::uint64_t batch = 0; remaining > 0 && !failed && !stopped; ++batch) {
    // The batch's cases as run_property generates them; the body never
    // fails, so RapidCheck never shrinks: after a failure the rest of the
    // batch passes without running.
    auto body = [&] {
      if (failed || stopped) return;
      if (should_stop()) {
        stopped = true;
        return;
      }
      const Scenario scenario = *generator;
      if (!check_all(scenario, CaseOrigin::kGenerate)) {
        failed = true;
        return;
      }
      for (RunResult& r : results) ++r.cases_passed;
    };
    rc::detail::TestMetadata metadata;
    metadata.id = "lockstep";
    ShrinkCounter counter;
    const auto result = rc::detail::checkProperty(rc::detail::toProperty(body), metadata,
                                                  batch_params(config, batch, remaining), counter);
    rethrow();
    if (!result.template is<rc::detail::SuccessResult>()) {
      throw InternalError("lockstep run: RapidCheck stopped without a verdict");
    }
    remaining -= result.template get<rc::detail::SuccessResult>().numSuccess;
  }
  if (failed) return std::nullopt;
  // Each property's own time plus an equal share of the rest (generation,
  // RapidCheck): the times add up to the run's.
  double own = 0.0;
  for (const RunResult& r : results) own += r.seconds;
  const double shared = std::max(0.0, std::chrono::duration<double>(Clock::now() - start).count() - own);
  for (RunResult& r : results) r.seconds += shared / static_cast<double>(results.size());
  return results;
}

}  // namespace capcheck
