// capcheck check/reproduce --dump: one capture of the scenario on a fresh
// op-level subject, its first replay and an eager forward on the reference
// copy, with every persistent and static buffer after each phase the subject
// annotates (each warmup, the capture, the replay, the eager forward) and the
// full vectors each model step computed with, to line up with an engine's logs.
#include <fmt/core.h>

#include <algorithm>
#include <iostream>
#include <optional>
#include <set>

#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "commands.h"

namespace capcheck::cli {

namespace {

// "[10,17,27,37] then 508 zeros": a buffer up to its last non-zero element.
std::string values_text(const std::vector<std::string>& values, std::size_t zeros) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) text += (i ? "," : "") + values[i];
  text += "]";
  if (zeros > 0) text += fmt::format(" then {} zero{}", zeros, zeros == 1 ? "" : "s");
  return text;
}

std::string buffer_text(Backend& backend, const Slice& slice) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(slice.count));
  if (!v.empty()) backend.download(slice, v.data());
  std::size_t end = v.size();
  while (end > 0 && v[end - 1] == 0) --end;
  std::vector<std::string> shown;
  for (std::size_t i = 0; i < end; ++i) shown.push_back(std::to_string(v[i]));
  return values_text(shown, v.size() - end);
}

void print_buffers(std::ostream& out, Backend& backend, Subject& subject, const std::string& title) {
  out << title << ":\n";
  std::set<std::string> shown;
  for (const NamedSlice& b : subject.persistent_buffers()) {
    out << fmt::format("  {:<26} {}\n", b.name, buffer_text(backend, b.slice));
    shown.insert(b.name);
  }
  for (const NamedSlice& b : subject.static_inputs()) {
    if (shown.count(b.name) == 0) out << fmt::format("  {:<26} {}\n", b.name, buffer_text(backend, b.slice));
  }
}

// What each model step of `trace` that ran read: its slices as they were
// when it ran (the buffers now, rewound through the ops after it).
void print_model_steps(std::ostream& out, Backend& backend, const Trace& trace) {
  auto now = [&](Buffer buffer, std::int64_t index) {
    std::int32_t value = 0;
    backend.download(Slice{buffer, index, 1}, &value);
    return value;
  };
  const auto& entries = trace.entries();
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const TraceEntry& e = entries[k];
    if (e.op.kind != OpKind::kModelStep || e.mode == TraceMode::kRecorded) continue;
    auto read = [&](const Slice& s) {
      std::vector<std::string> values;
      for (std::int64_t i = 0; i < s.count; ++i) {
        const auto v = trace.value_before(k, s.buffer, s.offset + i, now);
        values.push_back(v ? std::to_string(*v) : "?");  // "?": overwritten since, by a copy
      }
      std::size_t zeros = 0;
      while (!values.empty() && values.back() == "0") {
        values.pop_back();
        ++zeros;
      }
      return values_text(values, zeros);
    };
    out << "  the model step of '" << e.phase << "' (" << trace_mode_name(e.mode)
        << ") computed with:\n"
        << "    input_ids    " << read(e.op.src) << '\n'
        << "    position_ids " << read(e.op.positions) << '\n'
        << "    seq_ids      " << read(e.op.seq_ids) << '\n'
        << "    kv_lens      " << read(e.op.kv_lens) << '\n';
  }
}

}  // namespace

void print_dump(Subjects* unguarded, const std::string& subject, const Scenario& scenario,
                std::ostream& out) {
  auto* harness = dynamic_cast<Harness*>(unguarded);
  if (harness == nullptr) {
    throw UsageError("--dump prints the buffers of an op-level subject (trtllm); subject " + subject +
                     " is a LibTorch or Python subject: print its tensors from the subject itself");
  }
  Harness& h = *harness;
  Backend& backend = h.backend();
  constexpr const char* kBoundary = "(dump)";
  Subject* current = &h.graph_subject(scenario);
  // The state after each phase: printed when the next one starts.
  h.on_phase([&](const char* ended, const char*) {
    if (*ended && std::string(ended) != kBoundary) {
      print_buffers(out, backend, *current, std::string("after ") + ended);
    }
  });
  struct Unwatch {
    Harness& h;
    ~Unwatch() {
      h.on_phase(nullptr);
      h.stop_trace();
    }
  } unwatch{h};
  out << "--- dump: a capture and its first replay on a fresh graph instance, then an eager "
         "forward on the reference instance\n";
  // Runs `work` traced: the boundary prints the state after its last phase;
  // then what it returned (when it returns logits) and what each of its
  // model steps computed with.
  auto traced = [&](const char* what, auto work) {
    h.start_trace();
    const std::optional<Slice> returned = work();
    backend.annotate(kBoundary);
    h.stop_trace();
    if (returned) out << "  " << what << " returned logits " << buffer_text(backend, *returned) << '\n';
    print_model_steps(out, backend, h.trace());
  };
  Subject& graph = *current;
  graph.prepare(scenario);
  traced("the capture", [&]() -> std::optional<Slice> {
    graph.capture();
    return std::nullopt;
  });
  traced("the replay", [&]() -> std::optional<Slice> { return graph.replay(); });

  current = &h.eager_subject(scenario);
  Subject& eager = *current;
  eager.prepare(scenario);
  traced("the eager forward", [&]() -> std::optional<Slice> { return eager.forward_eager(); });
  out << "--- end of dump\n";
}

}  // namespace capcheck::cli
