// Capture properties: capture_preserves_inputs, warmup_count_invariant.
#include "support.h"

namespace capcheck {

using namespace properties_detail;

namespace {

// The persistent state right after capturing `scenario` on a fresh graph
// instance, and the output of the first replay.
struct CaptureRun {
  Snapshot after_capture;
  Outputs output;
};

CaptureRun capture_and_replay(Subjects& subjects, const Scenario& scenario) {
  Instance& graph = subjects.captured(scenario);
  CaptureRun run;
  graph.snapshot(run.after_capture);
  graph.replay(run.output);
  return run;
}

}  // namespace

Verdict check_capture_preserves_inputs(Instance& graph, const Scenario& scenario) {
  constexpr std::string_view kName = "capture_preserves_inputs";
  graph.prepare(scenario);
  thread_local SnapshotWindow window;
  if (!window.changed_by(graph, [&] { graph.capture(); })) return pass(kName);
  const SnapshotDifference& diff = window.difference();
  Verdict v = fail(kName,
                   "capture with " + std::to_string(scenario.warmups_count) +
                       " warmup(s) changed persistent buffer " + changed_text(diff.mismatch),
                   diff.mismatch);
  v.notes.push_back("changed by capture: " + window.changed());
  const std::string writer = graph.explain_change(diff.buffer, diff.mismatch.index);
  if (!writer.empty()) v.notes.push_back(writer);
  return v;
}

Verdict capture_preserves_inputs(Subjects& subjects, const Scenario& scenario) {
  return check_capture_preserves_inputs(subjects.graph(scenario), scenario);
}

Verdict warmup_count_invariant(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "warmup_count_invariant";
  Scenario other = scenario;
  other.warmups_count = scenario.warmups_count < kWarmupsMax ? scenario.warmups_count + 1
                                                             : scenario.warmups_count - 1;
  const CaptureRun a = capture_and_replay(subjects, scenario);
  const CaptureRun b = capture_and_replay(subjects, other);
  const std::string pair = std::to_string(scenario.warmups_count) + " and " +
                           std::to_string(other.warmups_count) + " warmups";
  SnapshotDifference diff;
  if (first_difference(a.after_capture, b.after_capture, &diff)) {
    const Mismatch& m = diff.mismatch;
    return fail(kName,
                "after capture with " + pair + ", " + m.location + " differs: " + m.expected +
                    " vs " + m.actual,
                m);
  }
  if (first_difference(a.output, b.output, &diff)) {
    const Mismatch& m = diff.mismatch;
    return fail(kName,
                "first replay after capture with " + pair + " differs at " + m.location + ": " +
                    m.expected + " vs " + m.actual,
                m);
  }
  return pass(kName);
}

}  // namespace capcheck
