// Replay properties: first_replay_matches_eager, replays_match_eager,
// replays_track_new_offsets, bucket_reuse_matches_eager, graph_cache_keys_distinct,
// capture_state_does_not_leak,
// static_inputs_fully_copied.
#include <vector>

#include "capcheck/errors.h"
#include "support.h"

namespace capcheck {

using namespace properties_detail;

namespace {

// Replays `graph` (captured and prepared for `scenario`) and an eager forward
// of `scenario` on a fresh instance, both traced; on a difference, a failed
// verdict of `name` saying "<what> computed X = a where an eager forward
// computes b", with what each side's traced work explains of it.
Verdict replay_against_eager(std::string_view name, const std::string& what, Subjects& subjects,
                             Instance& graph, const Scenario& scenario) {
  Outputs replayed;
  graph.start_trace();
  graph.replay(replayed);
  graph.stop_trace();

  Instance& eager = subjects.eager(scenario);
  eager.prepare(scenario);
  Outputs expected;
  eager.start_trace();
  eager.forward_eager(expected);
  eager.stop_trace();

  SnapshotDifference diff;
  if (!first_difference(expected, replayed, &diff)) return pass(name);
  const Mismatch& m = diff.mismatch;
  Verdict v = fail(name,
                   what + " computed " + m.location + " = " + m.actual +
                       " where an eager forward computes " + m.expected,
                   m);
  // Each instance still holds what its traced forward or replay read.
  const std::string eager_note = eager.explain_output(diff.buffer, m.index);
  const std::string replay_note = graph.explain_output(diff.buffer, m.index);
  if (!eager_note.empty()) v.notes.push_back("eager computed " + eager_note);
  if (!replay_note.empty()) v.notes.push_back("replay computed " + replay_note);
  return v;
}

}  // namespace

Verdict first_replay_matches_eager(Subjects& subjects, const Scenario& scenario) {
  Instance& graph = subjects.captured(scenario);
  return replay_against_eager("first_replay_matches_eager", "first replay after capture",
                              subjects, graph, scenario);
}

namespace {

// Capture `scenario`, replay it, then replay `follow_ups` further iterations
// of the same key (prepare, replay), each compared with an eager forward.
template <typename FollowUp>
Verdict replays_against_eager(std::string_view name, Subjects& subjects, const Scenario& scenario,
                              FollowUp next) {
  constexpr std::int32_t kFollowUps = 3;
  std::vector<Outputs> replayed(kFollowUps + 1);
  {
    Instance& graph = subjects.captured(scenario);
    graph.replay(replayed[0]);
    for (std::int32_t i = 1; i <= kFollowUps; ++i) {
      graph.prepare(next(scenario, i));  // the next iteration, same key
      graph.replay(replayed[static_cast<std::size_t>(i)]);
    }
  }
  for (std::int32_t i = 0; i <= kFollowUps; ++i) {
    const Outputs expected = eager_outputs(subjects, next(scenario, i));
    if (auto v = compare_outputs(name,
                                 i == 0 ? std::string("the first replay")
                                        : "replay " + std::to_string(i + 1) + " (follow-up " +
                                              std::to_string(i) + ")",
                                 expected, replayed[static_cast<std::size_t>(i)])) {
      return *v;
    }
  }
  return pass(name);
}

// A pass of `name` when no comparison failed (`v` empty); otherwise its
// failure with `why` as the first note.
Verdict failure_explained(std::string_view name, std::optional<Verdict> v, const char* why) {
  if (!v) return pass(name);
  v->notes.insert(v->notes.begin(), why);
  return *std::move(v);
}

}  // namespace

Verdict replays_match_eager(Subjects& subjects, const Scenario& scenario) {
  return replays_against_eager("replays_match_eager", subjects, scenario, &follow_up);
}

Verdict replays_track_new_offsets(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "replays_track_new_offsets";
  Verdict v = replays_against_eager(kName, subjects, scenario, &follow_up_with_new_offsets);
  if (!v.passed) {
    v.notes.insert(v.notes.begin(),
                   "each follow-up iteration accepted new draft-token counts and brought new "
                   "position and kv offsets (the overlap scheduler's previous_pos_id_offsets and "
                   "previous_kv_lens_offsets): a graph that reads the offsets of its capture, "
                   "or of an earlier iteration, shows here");
  }
  return v;
}

Verdict bucket_reuse_matches_eager(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "bucket_reuse_matches_eager";
  Scenario fewer;
  if (!one_more_dummy(scenario, &fewer)) return pass(kName);  // no real generation request
  Instance& graph = subjects.graph(scenario);
  // The key captured by an earlier batch of the same shape, with one real
  // request fewer, then serving this one.
  graph.prepare(fewer);
  graph.capture();
  graph.prepare(scenario);
  const std::int32_t real = scenario.num_seqs() - scenario.num_dummy_requests;
  Verdict v = replay_against_eager(
      kName,
      "a replay of the graph captured with " + std::to_string(real - 1) + " real request(s) and " +
          std::to_string(fewer.num_dummy_requests) + " padding dummies, on this batch of " +
          std::to_string(real) + " real request(s),",
      subjects, graph, scenario);
  if (!v.passed) {
    v.notes.insert(v.notes.begin(),
                   "the graph was captured on another batch of the same key (one real request "
                   "fewer): a host value of that batch baked into the graph (a real token or "
                   "request count), or an input the replay does not rewrite, shows here");
  }
  return v;
}

Verdict graph_cache_keys_distinct(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "graph_cache_keys_distinct";
  Scenario other;
  if (!with_other_draft_len(scenario, &other)) return pass(kName);  // no generation request
  subjects.graph(other);  // fitted for both keys (a refit would drop graphs)
  Instance& graph = subjects.graph(scenario);
  // Two keys one draft length apart, same batch size, captured one after the
  // other as an engine's warmup does; then each replayed, the later first.
  graph.prepare(scenario);
  graph.capture();
  graph.prepare(other);
  graph.capture();
  Outputs later, earlier;
  graph.replay(later);
  graph.prepare(scenario);
  graph.replay(earlier);
  auto key = [](const Scenario& s) {
    return "key (batch_size=" + std::to_string(s.key.batch_size) +
           ", draft_len=" + std::to_string(s.key.draft_len) + ")";
  };
  auto v = compare_outputs(kName, "the replay of " + key(other) + " captured after " + key(scenario),
                           eager_outputs(subjects, other), later);
  if (!v) {
    v = compare_outputs(kName, "the replay of " + key(scenario) + " after " + key(other) + " was captured",
                        eager_outputs(subjects, scenario), earlier);
  }
  return failure_explained(kName, std::move(v),
                           "two graph keys that differ in draft_len only: a graph cache whose key "
                           "misses a dimension replays one key's graph for the other");
}

Verdict capture_state_does_not_leak(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "capture_state_does_not_leak";
  // After a capture and its replay, the same instance serves the next
  // iteration eagerly (a batch no graph covers), then replays again.
  const Scenario next = follow_up(scenario, 1);
  const Scenario after = follow_up(scenario, 2);
  Instance& graph = subjects.graph(scenario);
  graph.prepare(scenario);
  graph.capture();
  Outputs replayed, served, again;
  graph.replay(replayed);
  graph.prepare(next);
  graph.forward_eager(served);
  graph.prepare(after);
  graph.replay(again);
  auto v = compare_outputs(kName, "an eager forward of the next iteration on the instance that captured",
                           eager_outputs(subjects, next), served);
  if (!v) v = compare_outputs(kName, "a replay after that eager forward", eager_outputs(subjects, after), again);
  return failure_explained(kName, std::move(v),
                           "state set only for capture (a capture-only switch or override) must not be "
                           "seen by later eager forwards or replays of the same instance");
}

Verdict graph_outputs_survive_other_replays(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "graph_outputs_survive_other_replays";
  const Scenario other = another_key(scenario);
  subjects.graph(other);  // fitted for both keys (a refit would drop graphs)
  Instance& graph = subjects.graph(scenario);
  // Two keys captured one after the other, as an engine's warmup does.
  graph.prepare(scenario);
  graph.capture();
  graph.prepare(other);
  graph.capture();
  graph.prepare(scenario);
  Outputs returned, later;
  graph.replay(returned);
  if (!graph.hold_outputs()) {
    throw UsageError(std::string(kName) + " needs a subject whose instance can hold a replay's "
                     "outputs (Instance::hold_outputs)");
  }
  graph.prepare(other);
  Outputs discarded;
  graph.replay(discarded);
  graph.held_outputs(later);
  if (auto v = compare_outputs(kName,
                               "after a replay of key (batch_size=" +
                                   std::to_string(other.key.batch_size) +
                                   "), the output an earlier replay returned",
                               returned, later)) {
    v->notes.push_back("the two graphs share memory: the second one's replay overwrote what the "
                       "first one returned (capture rule 6, shared pools)");
    return *v;
  }
  return pass(kName);
}

Verdict static_inputs_fully_copied(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "static_inputs_fully_copied";
  constexpr std::int32_t kPoisons[] = {0x5eed5eed, -0x0badf00d};
  Outputs outputs[2];
  for (int k = 0; k < 2; ++k) {
    // Whatever the static buffers held before the replay must not matter.
    Instance& graph = subjects.graph(scenario);
    graph.prepare(scenario);
    graph.capture();
    graph.poison_static_inputs(kPoisons[k]);
    graph.replay(outputs[k]);
  }
  if (auto v = compare_outputs(kName, "a replay over differently poisoned static inputs",
                               outputs[0], outputs[1])) {
    v->notes.push_back("replay does not overwrite every captured element of the static inputs");
    return *v;
  }
  return pass(kName);
}

}  // namespace capcheck
