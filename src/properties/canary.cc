// The canary: a property that must fail, proving the runners report failures.
#include "support.h"

namespace capcheck {

using namespace properties_detail;

Verdict canary_forward_never_changes_kv_lens(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "canary_forward_never_changes_kv_lens";
  Instance& instance = subjects.eager(scenario);
  instance.prepare(scenario);
  Snapshot before, after;
  instance.snapshot(before);
  Outputs outputs;
  instance.forward_eager(outputs);
  instance.snapshot(after);
  SnapshotDifference diff;
  if (first_difference(before, after, &diff)) {
    return fail(kName, "the forward changed " + diff.mismatch.location + " (a canary must fail)",
                diff.mismatch);
  }
  return pass(kName);
}

}  // namespace capcheck
