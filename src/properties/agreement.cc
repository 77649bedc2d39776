// Agreement: backends_agree, every buffer and output bitwise identical across
// the devices a subject runs on, after each phase.
#include <algorithm>
#include <vector>

#include "capcheck/errors.h"
#include "support.h"

namespace capcheck {

using namespace properties_detail;

namespace {

// Every persistent buffer and output of one device after each phase of a
// scenario: capture after 0..W warmups, first replay, follow-up replays, eager.
struct Phase {
  std::string name;
  Snapshot observed;  // persistent buffers, then the output when there is one
};

void record(std::vector<Phase>& phases, Instance& instance, std::string name,
            const Outputs* outputs) {
  Phase phase;
  phase.name = std::move(name);
  instance.snapshot(phase.observed);
  if (outputs) phase.observed.insert(phase.observed.end(), outputs->begin(), outputs->end());
  phases.push_back(std::move(phase));
}

std::vector<Phase> run_phases(Subjects& subjects, const Scenario& scenario) {
  constexpr std::int32_t kFollowUps = 2;
  std::vector<Phase> phases;
  for (std::int32_t w = 0; w <= scenario.warmups_count; ++w) {
    Scenario s = scenario;
    s.warmups_count = w;
    Instance& graph = subjects.graph(s);
    graph.prepare(s);
    graph.capture();
    record(phases, graph, "capture with " + std::to_string(w) + " warmup(s)", nullptr);
    if (w < scenario.warmups_count) continue;
    Outputs out;
    graph.replay(out);
    record(phases, graph, "first replay", &out);
    for (std::int32_t i = 1; i <= kFollowUps; ++i) {
      graph.prepare(follow_up(scenario, i));
      graph.replay(out);
      record(phases, graph, "follow-up replay " + std::to_string(i), &out);
    }
  }
  Instance& eager = subjects.eager(scenario);
  eager.prepare(scenario);
  Outputs out;
  eager.forward_eager(out);
  record(phases, eager, "eager forward", &out);
  return phases;
}

// The first differing element of two devices' copies of one buffer. Each
// device sizes its buffers for the largest scenario it has seen, so only the
// elements both have are compared: a verdict never depends on what ran before.
bool first_common_difference(const Observed& a, const Observed& b, Mismatch* out) {
  CAPCHECK_ASSERT(a.name == b.name && a.type == b.type);
  const std::int64_t count = std::min(a.count(), b.count());
  for (std::int64_t i = 0; i < count; ++i) {
    if (a.same_element(b, i)) continue;
    *out = Mismatch{a.name, i, a.element(i), b.element(i), element_location(a.name, a.shape, i)};
    return true;
  }
  return false;
}

}  // namespace

Verdict backends_agree(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "backends_agree";
  const auto peers = subjects.peer_subjects();
  if (peers.empty()) {
    throw UsageError("backends_agree needs a second backend to compare with, and this build or "
                     "machine has only '" + subjects.device_name() + "'");
  }
  const std::vector<Phase> reference = run_phases(subjects, scenario);
  for (Subjects* peer : peers) {
    const std::vector<Phase> other = run_phases(*peer, scenario);
    CAPCHECK_ASSERT(other.size() == reference.size());
    for (std::size_t p = 0; p < reference.size(); ++p) {
      const Phase& a = reference[p];
      const Phase& b = other[p];
      CAPCHECK_ASSERT(a.observed.size() == b.observed.size());
      for (std::size_t k = 0; k < a.observed.size(); ++k) {
        Mismatch m;
        if (!first_common_difference(a.observed[k], b.observed[k], &m)) continue;
        return fail(kName,
                    peer->device_name() + " disagrees with " + subjects.device_name() + " after " +
                        a.name + ": " + m.location + " is " +
                        m.actual + " vs " + m.expected,
                    m);
      }
    }
  }
  return pass(kName);
}

}  // namespace capcheck
