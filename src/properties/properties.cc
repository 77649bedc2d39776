#include "capcheck/properties.h"

#include <algorithm>
#include <sstream>

#include "capcheck/errors.h"

namespace capcheck {

namespace {

// The persistent buffers of a subject, downloaded into one flat host array.
class Snapshot {
 public:
  void take(Backend& backend, const std::vector<NamedSlice>& slices) {
    std::int64_t total = 0;
    for (const auto& s : slices) total += s.slice.count;
    values_.resize(static_cast<std::size_t>(total));
    std::int64_t at = 0;
    for (const auto& s : slices) {
      backend.download(s.slice, values_.data() + at);
      at += s.slice.count;
    }
  }

  // The first element (in buffer order) where `after` differs from this.
  std::optional<std::pair<std::size_t, Mismatch>> first_difference(
      const std::vector<NamedSlice>& slices, const Snapshot& after) const {
    CAPCHECK_ASSERT(values_.size() == after.values_.size());
    std::int64_t at = 0;
    for (std::size_t b = 0; b < slices.size(); ++b) {
      const std::int64_t count = slices[b].slice.count;
      const auto first = values_.begin() + at;
      if (std::equal(first, first + count, after.values_.begin() + at)) {
        at += count;
        continue;
      }
      for (std::int64_t i = 0; i < count; ++i) {
        const auto k = static_cast<std::size_t>(at + i);
        if (values_[k] != after.values_[k]) {
          return std::make_pair(
              b, Mismatch{slices[b].name, slices[b].slice.offset + i, values_[k], after.values_[k]});
        }
      }
      at += count;
    }
    return std::nullopt;
  }

  // "kv_lens_cuda (3 elements), static_position_ids (2 elements)": every buffer that differs.
  std::string changed_buffers(const std::vector<NamedSlice>& slices, const Snapshot& after) const {
    std::string out;
    std::int64_t at = 0;
    for (const auto& s : slices) {
      std::int64_t changed = 0;
      for (std::int64_t i = 0; i < s.slice.count; ++i) {
        const auto k = static_cast<std::size_t>(at + i);
        changed += values_[k] != after.values_[k] ? 1 : 0;
      }
      if (changed > 0) {
        out += (out.empty() ? "" : ", ") + s.name + " (" + std::to_string(changed) +
               (changed == 1 ? " element)" : " elements)");
      }
      at += s.slice.count;
    }
    return out;
  }

 private:
  std::vector<std::int32_t> values_;
};

Verdict pass(std::string_view name) {
  Verdict v;
  v.property = std::string(name);
  return v;
}

Verdict fail(std::string_view name, std::string message, std::optional<Mismatch> mismatch = {}) {
  Verdict v;
  v.passed = false;
  v.property = std::string(name);
  v.message = std::move(message);
  v.mismatch = std::move(mismatch);
  return v;
}

void add_last_writer(Verdict& verdict, Harness& harness, const NamedSlice& slice,
                     std::int64_t index) {
  const auto writer = harness.trace().last_writer(slice.slice.buffer, index);
  if (writer) {
    verdict.notes.push_back("last write to " + slice.name + "[" + std::to_string(index) +
                            "]: " + describe(harness.backend(), *writer));
  }
}

// The (input_id, position_id, kv_len) the last model step of the trace read
// for `token`, as a note line.
std::string model_inputs(Backend& backend, const Trace& trace, std::int64_t token) {
  const auto step = trace.last_model_step();
  if (!step) return "no model step was traced";
  const Op& op = step->op;
  auto at = [&](Slice s, std::int64_t i) {
    std::int32_t value = 0;
    backend.download(Slice{s.buffer, s.offset + i, 1}, &value);
    return value;
  };
  const std::int32_t seq = at(op.seq_ids, token);
  std::ostringstream out;
  out << "input_id=" << at(op.src, token) << " position_id=" << at(op.positions, token)
      << " kv_len=" << at(op.kv_lens, seq) << " (sequence " << seq << ", "
      << trace_mode_name(step->mode) << ")";
  return out.str();
}

// Captures `scenario` on the graph subject and returns the persistent buffers
// right after capture and the output of the first replay.
struct CaptureRun {
  Snapshot after_capture;
  std::vector<std::int32_t> output;
};

CaptureRun capture_and_replay(Harness& harness, const Scenario& scenario) {
  Subject& subject = harness.graph_subject(scenario);
  subject.prepare(scenario);
  subject.capture();
  CaptureRun run;
  run.after_capture.take(harness.backend(), subject.persistent_buffers());
  run.output = read(harness.backend(), subject.replay());
  return run;
}

// The first token where `actual` differs from `expected`, as a failed verdict
// whose message starts with `what`; nullopt when equal.
std::optional<Verdict> compare_logits(std::string_view name, const std::string& what,
                                      const std::vector<std::int32_t>& expected,
                                      const std::vector<std::int32_t>& actual) {
  CAPCHECK_ASSERT(expected.size() == actual.size());
  for (std::size_t t = 0; t < expected.size(); ++t) {
    if (expected[t] == actual[t]) continue;
    return fail(name,
                what + " computed logits[" + std::to_string(t) + "] = " +
                    std::to_string(actual[t]) + " where " + std::to_string(expected[t]) +
                    " is expected",
                Mismatch{"logits", static_cast<std::int64_t>(t), expected[t], actual[t]});
  }
  return std::nullopt;
}

std::vector<std::int32_t> eager_logits(Harness& harness, const Scenario& scenario) {
  Subject& eager = harness.eager_subject(scenario);
  eager.prepare(scenario);
  return read(harness.backend(), eager.forward_eager());
}

// The i-th follow-up iteration of `s` with the same graph key: every request
// one step further (ids, positions and kv_lens advance).
Scenario follow_up(const Scenario& s, std::int32_t i) {
  Scenario next = s;
  for (auto& id : next.input_ids) id = (id + 7919 * i) % 32000;
  for (auto& position : next.position_ids) position += i;
  for (auto& kv : next.kv_lens) kv += i;
  return next;
}

// Every persistent buffer and output of one backend after each phase of a
// scenario: capture after 0..W warmups, first replay, follow-up replays, eager.
struct Phase {
  std::string name;
  std::vector<std::string> buffer_names;
  std::vector<std::vector<std::int32_t>> buffers;
};

void record(std::vector<Phase>& phases, Harness& harness, const Subject& subject,
            std::string name, const Slice* output) {
  Phase phase;
  phase.name = std::move(name);
  for (const NamedSlice& s : subject.persistent_buffers()) {
    phase.buffer_names.push_back(s.name);
    phase.buffers.push_back(read(harness.backend(), s.slice));
  }
  if (output) {
    phase.buffer_names.push_back("logits");
    phase.buffers.push_back(read(harness.backend(), *output));
  }
  phases.push_back(std::move(phase));
}

std::vector<Phase> run_phases(Harness& harness, const Scenario& scenario) {
  constexpr std::int32_t kFollowUps = 2;
  std::vector<Phase> phases;
  for (std::int32_t w = 0; w <= scenario.warmups_count; ++w) {
    Scenario s = scenario;
    s.warmups_count = w;
    Subject& graph = harness.graph_subject(s);
    graph.prepare(s);
    graph.capture();
    record(phases, harness, graph, "capture with " + std::to_string(w) + " warmup(s)", nullptr);
    if (w < scenario.warmups_count) continue;
    Slice out = graph.replay();
    record(phases, harness, graph, "first replay", &out);
    for (std::int32_t i = 1; i <= kFollowUps; ++i) {
      graph.prepare(follow_up(scenario, i));
      out = graph.replay();
      record(phases, harness, graph, "follow-up replay " + std::to_string(i), &out);
    }
  }
  Subject& eager = harness.eager_subject(scenario);
  eager.prepare(scenario);
  const Slice out = eager.forward_eager();
  record(phases, harness, eager, "eager forward", &out);
  return phases;
}

}  // namespace

Verdict check_capture_preserves_inputs(Harness& harness, Subject& subject,
                                       const Scenario& scenario) {
  constexpr std::string_view kName = "capture_preserves_inputs";
  subject.prepare(scenario);
  thread_local Snapshot before, after;  // reused: no allocation per case
  before.take(harness.backend(), subject.persistent_buffers());
  harness.start_trace();
  subject.capture();
  harness.stop_trace();
  after.take(harness.backend(), subject.persistent_buffers());
  const auto diff = before.first_difference(subject.persistent_buffers(), after);
  if (!diff) return pass(kName);
  const auto& [buffer, m] = *diff;
  Verdict v = fail(kName,
                   "capture with " + std::to_string(scenario.warmups_count) +
                       " warmup(s) changed persistent buffer " + m.buffer + "[" +
                       std::to_string(m.index) + "] from " + std::to_string(m.expected) + " to " +
                       std::to_string(m.actual),
                   m);
  v.notes.push_back("changed by capture: " +
                    before.changed_buffers(subject.persistent_buffers(), after));
  add_last_writer(v, harness, subject.persistent_buffers()[buffer], m.index);
  return v;
}

Verdict check_outputs_equal(std::string_view property, const std::string& what,
                            const std::vector<std::int32_t>& expected,
                            const std::vector<std::int32_t>& actual) {
  if (auto v = compare_logits(property, what, expected, actual)) return *v;
  return pass(property);
}

Verdict capture_preserves_inputs(Harness& harness, const Scenario& scenario) {
  return check_capture_preserves_inputs(harness, harness.graph_subject(scenario), scenario);
}

Verdict first_replay_matches_eager(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "first_replay_matches_eager";
  Subject& graph = harness.graph_subject(scenario);
  graph.prepare(scenario);
  graph.capture();
  harness.start_trace();
  const auto replayed = read(harness.backend(), graph.replay());
  harness.stop_trace();
  const Trace graph_trace = harness.trace();

  Subject& eager = harness.eager_subject(scenario);
  eager.prepare(scenario);
  harness.start_trace();
  const auto expected = read(harness.backend(), eager.forward_eager());
  harness.stop_trace();

  CAPCHECK_ASSERT(replayed.size() == expected.size());
  for (std::size_t t = 0; t < expected.size(); ++t) {
    if (expected[t] == replayed[t]) continue;
    Verdict v = fail(kName,
                     "first replay after capture computed logits[" + std::to_string(t) + "] = " +
                         std::to_string(replayed[t]) + " where an eager forward computes " +
                         std::to_string(expected[t]),
                     Mismatch{"logits", static_cast<std::int64_t>(t), expected[t], replayed[t]});
    const auto token = static_cast<std::int64_t>(t);
    v.notes.push_back("eager computed token " + std::to_string(t) + " with " +
                      model_inputs(harness.backend(), harness.trace(), token));
    // The graph subject's buffers still hold what its replay read.
    v.notes.push_back("replay computed token " + std::to_string(t) + " with " +
                      model_inputs(harness.backend(), graph_trace, token));
    return v;
  }
  return pass(kName);
}

Verdict warmup_count_invariant(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "warmup_count_invariant";
  Scenario other = scenario;
  other.warmups_count = scenario.warmups_count < kWarmupsMax ? scenario.warmups_count + 1
                                                             : scenario.warmups_count - 1;
  const CaptureRun a = capture_and_replay(harness, scenario);
  const CaptureRun b = capture_and_replay(harness, other);
  const auto& buffers = harness.graph_subject(scenario).persistent_buffers();
  const std::string pair = std::to_string(scenario.warmups_count) + " and " +
                           std::to_string(other.warmups_count) + " warmups";
  if (const auto diff = a.after_capture.first_difference(buffers, b.after_capture)) {
    const Mismatch& m = diff->second;
    return fail(kName,
                "after capture with " + pair + ", " + m.buffer + "[" + std::to_string(m.index) +
                    "] differs: " + std::to_string(m.expected) + " vs " +
                    std::to_string(m.actual),
                m);
  }
  for (std::size_t t = 0; t < a.output.size(); ++t) {
    if (a.output[t] != b.output[t]) {
      return fail(kName,
                  "first replay after capture with " + pair + " differs at logits[" +
                      std::to_string(t) + "]: " + std::to_string(a.output[t]) + " vs " +
                      std::to_string(b.output[t]),
                  Mismatch{"logits", static_cast<std::int64_t>(t), a.output[t], b.output[t]});
    }
  }
  return pass(kName);
}

Verdict postprocess_inverts_preprocess(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "postprocess_inverts_preprocess";
  Subject& subject = harness.eager_subject(scenario);
  subject.prepare(scenario);
  thread_local Snapshot before, after;
  before.take(harness.backend(), subject.persistent_buffers());
  harness.start_trace();
  subject.preprocess();
  subject.postprocess();
  harness.stop_trace();
  after.take(harness.backend(), subject.persistent_buffers());
  const auto diff = before.first_difference(subject.persistent_buffers(), after);
  if (!diff) return pass(kName);
  const auto& [buffer, m] = *diff;
  Verdict v = fail(kName,
                   "postprocess(preprocess(inputs)) changed " + m.buffer + "[" +
                       std::to_string(m.index) + "] from " + std::to_string(m.expected) + " to " +
                       std::to_string(m.actual),
                   m);
  add_last_writer(v, harness, subject.persistent_buffers()[buffer], m.index);
  return v;
}

Verdict replays_match_eager(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "replays_match_eager";
  constexpr std::int32_t kFollowUps = 3;
  std::vector<std::vector<std::int32_t>> replayed;
  {
    Subject& graph = harness.graph_subject(scenario);
    graph.prepare(scenario);
    graph.capture();
    replayed.push_back(read(harness.backend(), graph.replay()));
    for (std::int32_t i = 1; i <= kFollowUps; ++i) {
      graph.prepare(follow_up(scenario, i));  // the next iteration, same key
      replayed.push_back(read(harness.backend(), graph.replay()));
    }
  }
  for (std::int32_t i = 0; i <= kFollowUps; ++i) {
    const auto expected = eager_logits(harness, follow_up(scenario, i));
    if (auto v = compare_logits(kName,
                                i == 0 ? std::string("the first replay")
                                       : "replay " + std::to_string(i + 1) + " (follow-up " +
                                             std::to_string(i) + ")",
                                expected, replayed[static_cast<std::size_t>(i)])) {
      return *v;
    }
  }
  return pass(kName);
}

Verdict padding_is_inert(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "padding_is_inert";
  // The same batch without its padding dummies (the last generation rows).
  Scenario real = scenario;
  const std::int32_t dummies = scenario.num_dummy_requests;
  const std::int32_t real_generations = scenario.num_generations - dummies;
  const std::int32_t gen_tokens = real_generations * (1 + scenario.key.draft_len);
  const std::int32_t tokens = scenario.num_ctx_tokens() + gen_tokens;
  real.num_dummy_requests = 0;
  real.num_generations = real_generations;
  real.key.batch_size = scenario.num_contexts + real_generations;
  real.seq_lens.resize(static_cast<std::size_t>(real.key.batch_size));
  real.kv_lens.resize(static_cast<std::size_t>(real.key.batch_size));
  real.num_accepted_tokens.resize(static_cast<std::size_t>(real_generations));
  real.input_ids.resize(static_cast<std::size_t>(tokens));
  real.position_ids.resize(static_cast<std::size_t>(tokens));
  real.previous_pos_id_offsets.resize(static_cast<std::size_t>(gen_tokens));
  if (real.num_chunked_ctx_requests == 0) {
    real.previous_kv_lens_offsets.resize(static_cast<std::size_t>(real_generations));
  }
  if (real.key.batch_size == 0) return pass(kName);  // nothing but padding
  validate(real);
  const auto padded = eager_logits(harness, scenario);
  const auto unpadded = eager_logits(harness, real);
  const std::vector<std::int32_t> real_rows(padded.begin(), padded.begin() + tokens);
  if (auto v = compare_logits(kName,
                              "with " + std::to_string(dummies) +
                                  " padding dummy row(s), the forward",
                              unpadded, real_rows)) {
    return *v;
  }
  return pass(kName);
}

Verdict static_inputs_fully_copied(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "static_inputs_fully_copied";
  constexpr std::int32_t kPoisons[] = {0x5eed5eed, -0x0badf00d};
  std::vector<std::vector<std::int32_t>> outputs;
  for (const std::int32_t poison : kPoisons) {
    // Whatever the static buffers held before the replay must not matter.
    Subject& graph = harness.graph_subject(scenario);
    graph.prepare(scenario);
    graph.capture();
    for (const NamedSlice& input : graph.static_inputs()) harness.backend().fill(input.slice, poison);
    outputs.push_back(read(harness.backend(), graph.replay()));
  }
  if (auto v = compare_logits(kName, "a replay over differently poisoned static inputs", outputs[0],
                              outputs[1])) {
    v->notes.push_back("replay does not overwrite every captured element of the static inputs");
    return *v;
  }
  return pass(kName);
}

Verdict backends_agree(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "backends_agree";
  const auto peers = harness.peers();
  if (peers.empty()) {
    throw UsageError("backends_agree needs a second backend to compare with, and this build or "
                     "machine has only '" + std::string(harness.backend().name()) + "'");
  }
  const std::vector<Phase> reference = run_phases(harness, scenario);
  for (Harness* peer : peers) {
    const std::vector<Phase> other = run_phases(*peer, scenario);
    CAPCHECK_ASSERT(other.size() == reference.size());
    for (std::size_t p = 0; p < reference.size(); ++p) {
      const Phase& a = reference[p];
      const Phase& b = other[p];
      CAPCHECK_ASSERT(a.buffers.size() == b.buffers.size());
      for (std::size_t k = 0; k < a.buffers.size(); ++k) {
        for (std::size_t i = 0; i < a.buffers[k].size(); ++i) {
          if (a.buffers[k][i] == b.buffers[k][i]) continue;
          return fail(kName,
                      std::string(peer->backend().name()) + " disagrees with " +
                          std::string(harness.backend().name()) + " after " + a.name + ": " +
                          a.buffer_names[k] + "[" + std::to_string(i) + "] is " +
                          std::to_string(b.buffers[k][i]) + " vs " +
                          std::to_string(a.buffers[k][i]),
                      Mismatch{a.buffer_names[k], static_cast<std::int64_t>(i), a.buffers[k][i],
                               b.buffers[k][i]});
        }
      }
    }
  }
  return pass(kName);
}

Verdict canary_forward_never_changes_kv_lens(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "canary_forward_never_changes_kv_lens";
  Subject& subject = harness.eager_subject(scenario);
  subject.prepare(scenario);
  Snapshot before, after;
  before.take(harness.backend(), subject.persistent_buffers());
  subject.forward_eager();
  after.take(harness.backend(), subject.persistent_buffers());
  const auto& buffers = subject.persistent_buffers();
  if (const auto diff = before.first_difference(buffers, after)) {
    return fail(kName, "the forward changed " + diff->second.buffer + "[" +
                           std::to_string(diff->second.index) + "] (a canary must fail)",
                diff->second);
  }
  return pass(kName);
}

const std::vector<PropertyInfo>& all_properties() {
  static const std::vector<PropertyInfo> properties = {
      {"capture_preserves_inputs",
       "every persistent buffer is bitwise equal before and after capture (warmups included)",
       &capture_preserves_inputs},
      {"first_replay_matches_eager",
       "the replay right after capture equals an eager forward of the same inputs on a fresh copy",
       &first_replay_matches_eager},
      {"warmup_count_invariant",
       "buffers after capture and the first replay do not depend on the number of warmups",
       &warmup_count_invariant},
      {"postprocess_inverts_preprocess",
       "postprocess after preprocess is the identity on every persistent buffer, on every branch",
       &postprocess_inverts_preprocess},
      {"replays_match_eager",
       "every replay over follow-up iterations (re-prepare, replay) equals an eager forward",
       &replays_match_eager},
      {"padding_is_inert", "padding dummy rows never change the real rows' outputs",
       &padding_is_inert},
      {"static_inputs_fully_copied",
       "a replay's output does not depend on what the static input buffers held before it",
       &static_inputs_fully_copied},
      {"backends_agree",
       "every buffer and output is bitwise identical across backends after each phase (each "
       "warmup count, capture, first and later replays, eager)",
       &backends_agree},
      {"canary_forward_never_changes_kv_lens",
       "CANARY (must fail): an eager forward leaves every persistent buffer unchanged",
       &canary_forward_never_changes_kv_lens, /*canary=*/true},
  };
  return properties;
}

const PropertyInfo& find_property(std::string_view name) {
  std::string known;
  for (const auto& p : all_properties()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + std::string(p.name);
  }
  throw UsageError("unknown property '" + std::string(name) + "'; known: " + known);
}

Verdict check_property(const PropertyInfo& property, Harness& harness, const Scenario& scenario) {
  try {
    return property.check(harness, scenario);
  } catch (const BackendError& e) {
    if (e.kind() == BackendErrorKind::kUnavailable || e.kind() == BackendErrorKind::kDevice) throw;
    if (harness.backend().capturing()) {
      try {
        harness.backend().end_capture();
      } catch (const BackendError&) {
        // The capture was already invalid; ending it only resets the stream.
      }
    }
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
      out << "  first difference: " << v.mismatch->buffer << '[' << v.mismatch->index
          << "] expected " << v.mismatch->expected << ", got " << v.mismatch->actual << '\n';
    }
    for (const auto& note : v.notes) out << "  " << note << '\n';
  }
  return out.str();
}

}  // namespace capcheck
