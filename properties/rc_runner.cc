#include "rc_runner.h"

#include <chrono>
#include <exception>
#include <rapidcheck/detail/TestListener.h>

#include "capcheck/errors.h"

namespace capcheck {

namespace {

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

}  // namespace

std::uint64_t ci_seed(std::string_view property_name) {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a 64
  for (char c : property_name) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

RunResult run_property(Harness& harness, const PropertyInfo& property, const RunConfig& config) {
  if (config.cases < 1) throw UsageError("--cases must be at least 1");
  const rc::Gen<Scenario> generator = gen_scenario(config.gen);

  std::optional<Scenario> last_failure;
  Verdict last_verdict;
  std::exception_ptr fatal;
  auto body = [&] {
    if (fatal) return;  // a device failure ends the run; finish quickly
    const Scenario scenario = *generator;
    Verdict verdict;
    try {
      verdict = check_property(property, harness, scenario);
    } catch (const BackendError&) {
      fatal = std::current_exception();
      return;
    } catch (const InternalError&) {
      fatal = std::current_exception();
      return;
    }
    if (!verdict.passed) {
      last_failure = scenario;
      last_verdict = verdict;
      RC_FAIL(verdict.message);
    }
  };

  rc::detail::TestMetadata metadata;
  metadata.id = std::string(property.name);
  metadata.description = std::string(property.claim);
  rc::detail::TestParams params;
  params.seed = config.seed;
  params.maxSuccess = config.cases;
  params.maxSize = 100;
  params.maxDiscardRatio = 10;
  ShrinkCounter counter;

  const auto start = std::chrono::steady_clock::now();
  const auto result =
      rc::detail::checkProperty(rc::detail::toProperty(body), metadata, params, counter);
  const auto stop = std::chrono::steady_clock::now();
  if (fatal) std::rethrow_exception(fatal);

  RunResult run;
  run.property = std::string(property.name);
  run.seed = config.seed;
  run.seconds = std::chrono::duration<double>(stop - start).count();
  run.shrinks_tried = counter.tried;
  run.shrinks_accepted = counter.accepted_count;
  if (result.template is<rc::detail::SuccessResult>()) {
    run.cases_passed = result.template get<rc::detail::SuccessResult>().numSuccess;
    run.verdict.property = run.property;
    return run;
  }
  if (result.template is<rc::detail::FailureResult>()) {
    const auto& failure = result.template get<rc::detail::FailureResult>();
    run.cases_passed = failure.numSuccess;
    run.passed = false;
    CAPCHECK_ASSERT(last_failure.has_value());
    run.counterexample = last_failure;
    // Re-check the minimal case so the verdict (and its trace notes) belong to it.
    run.verdict = check_property(property, harness, *last_failure);
    CAPCHECK_ASSERT(!run.verdict.passed);
    return run;
  }
  std::string description = "RapidCheck stopped without a verdict";
  if (result.template is<rc::detail::GaveUpResult>()) {
    description = result.template get<rc::detail::GaveUpResult>().description;
  } else if (result.template is<rc::detail::Error>()) {
    description = result.template get<rc::detail::Error>().description;
  }
  throw InternalError("property " + run.property + ": " + description);
}

}  // namespace capcheck
