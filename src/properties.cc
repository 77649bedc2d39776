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

std::vector<std::int32_t> read(Backend& backend, Slice slice) {
  std::vector<std::int32_t> values(static_cast<std::size_t>(slice.count));
  backend.download(slice, values.data());
  return values;
}

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

}  // namespace

Verdict capture_preserves_inputs(Harness& harness, const Scenario& scenario) {
  constexpr std::string_view kName = "capture_preserves_inputs";
  Subject& subject = harness.graph_subject(scenario);
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
