// Verdicts: building, comparing, formatting; what every family shares.
#include <sstream>

#include "capcheck/errors.h"
#include "support.h"

namespace capcheck {

namespace properties_detail {

Verdict pass(std::string_view name) {
  Verdict v;
  v.property = std::string(name);
  return v;
}

Verdict fail(std::string_view name, std::string message, std::optional<Mismatch> mismatch) {
  Verdict v;
  v.passed = false;
  v.property = std::string(name);
  v.message = std::move(message);
  v.mismatch = std::move(mismatch);
  return v;
}

std::optional<Verdict> compare_outputs(std::string_view name, const std::string& what,
                                       const Outputs& expected, const Outputs& actual) {
  SnapshotDifference diff;
  if (!first_difference(expected, actual, &diff)) return std::nullopt;
  const Mismatch& m = diff.mismatch;
  return fail(name, what + " computed " + m.location + " = " + m.actual + " where " + m.expected +
                        " is expected",
              m);
}

std::string changed_text(const Mismatch& m) {
  return m.location + " from " + m.expected + " to " + m.actual;
}

Outputs eager_outputs(Subjects& subjects, const Scenario& scenario) {
  Instance& eager = subjects.eager(scenario);
  eager.prepare(scenario);
  Outputs out;
  eager.forward_eager(out);
  return out;
}

namespace {
// `value + step` when that stays within [.., max], otherwise `value - step`:
// a follow-up of a scenario at a documented limit is still a valid scenario.
std::int32_t step_within(std::int32_t value, std::int32_t step, std::int32_t max) {
  return value <= max - step ? value + step : value - step;
}
}  // namespace

Scenario follow_up(const Scenario& s, std::int32_t i) {
  CAPCHECK_ASSERT(i >= 0 && i < 64);
  Scenario next = s;
  if (i == 0) return next;  // follow-up 0 is the scenario itself
  // New token ids (an xor stays in int32 for any id and changes every one);
  // positions and KV lengths move on by i, or back by i at their limits.
  for (auto& id : next.input_ids) id ^= 7919 * i;
  for (auto& position : next.position_ids) position = step_within(position, i, kPositionMagnitudeMax);
  for (auto& kv : next.kv_lens) kv = step_within(kv, i, kKvLenMax);
  return next;
}

}  // namespace properties_detail

Verdict check_outputs_equal(std::string_view property, const std::string& what,
                            const Outputs& expected, const Outputs& actual) {
  if (auto v = properties_detail::compare_outputs(property, what, expected, actual)) return *v;
  return properties_detail::pass(property);
}

Verdict check_property(const PropertyInfo& property, Subjects& subjects, const Scenario& scenario) {
  try {
    return property.check(subjects, scenario);
  } catch (const BackendError& e) {
    if (e.kind() == BackendErrorKind::kUnavailable || e.kind() == BackendErrorKind::kDevice) throw;
    subjects.abandon_capture();
    Verdict v;
    v.passed = false;
    v.property = std::string(property.name);
    v.message = std::string("the subject made an illegal backend call: ") + e.what();
    return v;
  }
}

std::string format_verdict(const Verdict& v) {
  std::ostringstream out;
  out << v.property << ": " << (v.passed ? "passed" : "VIOLATED") << '\n';
  if (!v.passed) {
    out << "  " << v.message << '\n';
    if (v.mismatch) {
      out << "  first difference: " << v.mismatch->location << " expected "
          << v.mismatch->expected << ", got " << v.mismatch->actual << '\n';
    }
    for (const auto& note : v.notes) out << "  " << note << '\n';
  }
  return out.str();
}

}  // namespace capcheck
