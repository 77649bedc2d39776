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

#include <nlohmann/json.hpp>

#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "commands.h"

namespace capcheck::cli {

namespace {

using nlohmann::json;

// A buffer's values: numbers, null where a value is unknown (overwritten
// since by a copy: the text shows "?").
json buffer_values(Backend& backend, const Slice& slice) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(slice.count));
  if (!v.empty()) backend.download(slice, v.data());
  return json(v);
}

// "[10,17,27,37] then 508 zeros": a buffer up to its last non-zero element.
std::string values_text(const json& values) {
  std::size_t end = values.size();
  while (end > 0 && values[end - 1].is_number() && values[end - 1].get<std::int64_t>() == 0) --end;
  std::string text = "[";
  for (std::size_t i = 0; i < end; ++i) {
    text += (i ? "," : "") + (values[i].is_null() ? std::string("?") : values[i].dump());
  }
  text += "]";
  const std::size_t zeros = values.size() - end;
  if (zeros > 0) text += fmt::format(" then {} zero{}", zeros, zeros == 1 ? "" : "s");
  return text;
}

json buffers(Backend& backend, Subject& subject) {
  json out = json::array();
  std::set<std::string> shown;
  for (const NamedSlice& b : subject.persistent_buffers()) {
    out.push_back({{"name", b.name}, {"values", buffer_values(backend, b.slice)}});
    shown.insert(b.name);
  }
  for (const NamedSlice& b : subject.static_inputs()) {
    if (shown.count(b.name) == 0) {
      out.push_back({{"name", b.name}, {"values", buffer_values(backend, b.slice)}});
    }
  }
  return out;
}

// What each model step of `trace` that ran read: its slices as they were
// when it ran (the buffers now, rewound through the ops after it).
json model_steps(Backend& backend, const Trace& trace) {
  auto now = [&](Buffer buffer, std::int64_t index) {
    std::int32_t value = 0;
    backend.download(Slice{buffer, index, 1}, &value);
    return value;
  };
  json steps = json::array();
  const auto& entries = trace.entries();
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const TraceEntry& e = entries[k];
    if (e.op.kind != OpKind::kModelStep || e.mode == TraceMode::kRecorded) continue;
    auto read = [&](const Slice& s) {
      json values = json::array();
      for (std::int64_t i = 0; i < s.count; ++i) {
        const auto v = trace.value_before(k, s.buffer, s.offset + i, now);
        values.push_back(v ? json(*v) : json());
      }
      return values;
    };
    steps.push_back({{"phase", e.phase},
                     {"mode", std::string(trace_mode_name(e.mode))},
                     {"input_ids", read(e.op.src)},
                     {"position_ids", read(e.op.positions)},
                     {"seq_ids", read(e.op.seq_ids)},
                     {"kv_lens", read(e.op.kv_lens)}});
  }
  return steps;
}

}  // namespace

json collect_dump(Subjects* unguarded, const std::string& subject, const Scenario& scenario) {
  auto* harness = dynamic_cast<Harness*>(unguarded);
  if (harness == nullptr) {
    throw UsageError("--dump prints the buffers of an op-level subject (trtllm); subject " + subject +
                     " is a LibTorch or Python subject: print its tensors from the subject itself");
  }
  Harness& h = *harness;
  Backend& backend = h.backend();
  constexpr const char* kBoundary = "(dump)";
  Subject* current = &h.graph_subject(scenario);
  json events = json::array();
  // The state after each phase: taken when the next one starts.
  h.on_phase([&](const char* ended, const char*) {
    if (*ended && std::string(ended) != kBoundary) {
      events.push_back({{"after", ended}, {"buffers", buffers(backend, *current)}});
    }
  });
  struct Unwatch {
    Harness& h;
    ~Unwatch() {
      h.on_phase(nullptr);
      h.stop_trace();
    }
  } unwatch{h};
  // Runs `work` traced: the boundary takes the state after its last phase;
  // then what it returned (when it returns logits) and what each of its
  // model steps computed with.
  auto traced = [&](const char* what, auto work) {
    h.start_trace();
    const std::optional<Slice> returned = work();
    backend.annotate(kBoundary);
    h.stop_trace();
    events.push_back({{"run", what},
                      {"returned_logits", returned ? buffer_values(backend, *returned) : json()},
                      {"model_steps", model_steps(backend, h.trace())}});
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
  return events;
}

void print_dump(const json& events, std::ostream& out) {
  out << "--- dump: a capture and its first replay on a fresh graph instance, then an eager "
         "forward on the reference instance\n";
  for (const json& e : events) {
    if (e.contains("after")) {
      out << "after " << e["after"].get<std::string>() << ":\n";
      for (const json& b : e["buffers"]) {
        out << fmt::format("  {:<26} {}\n", b["name"].get<std::string>(), values_text(b["values"]));
      }
      continue;
    }
    if (!e["returned_logits"].is_null()) {
      out << "  " << e["run"].get<std::string>() << " returned logits "
          << values_text(e["returned_logits"]) << '\n';
    }
    for (const json& step : e["model_steps"]) {
      out << "  the model step of '" << step["phase"].get<std::string>() << "' ("
          << step["mode"].get<std::string>() << ") computed with:\n"
          << "    input_ids    " << values_text(step["input_ids"]) << '\n'
          << "    position_ids " << values_text(step["position_ids"]) << '\n'
          << "    seq_ids      " << values_text(step["seq_ids"]) << '\n'
          << "    kv_lens      " << values_text(step["kv_lens"]) << '\n';
    }
  }
  out << "--- end of dump\n";
}

}  // namespace capcheck::cli
