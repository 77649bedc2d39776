#include "capcheck/detail/trace.h"

namespace capcheck {

const char* trace_mode_name(TraceMode mode) {
  switch (mode) {
    case TraceMode::kExecuted: return "executed eagerly";
    case TraceMode::kRecorded: return "recorded in the graph, not executed";
    case TraceMode::kReplayed: return "replayed from the graph";
    case TraceMode::kUploaded: return "uploaded from host";
  }
  return "unknown";
}

std::optional<TraceEntry> Trace::last_writer(Buffer buffer, std::int64_t index) const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->mode == TraceMode::kRecorded) continue;
    const Slice& dst = it->op.dst;
    if (dst.buffer == buffer && index >= dst.offset && index < dst.offset + dst.count) return *it;
  }
  return std::nullopt;
}

std::optional<std::size_t> Trace::last_model_step() const {
  for (std::size_t k = entries_.size(); k-- > 0;) {
    const TraceEntry& entry = entries_[k];
    if (entry.mode != TraceMode::kRecorded && entry.op.kind == OpKind::kModelStep) return k;
  }
  return std::nullopt;
}

std::string describe(const Backend& backend, const TraceEntry& entry) {
  std::string op = entry.mode == TraceMode::kUploaded
                       ? "upload " + backend.label(entry.op.dst.buffer) + "[" +
                             std::to_string(entry.op.dst.offset) + ":" +
                             std::to_string(entry.op.dst.offset + entry.op.dst.count) + "]"
                       : describe(backend, entry.op);
  return std::string(entry.phase) + ": " + op + " (" + trace_mode_name(entry.mode) + ")";
}

}  // namespace capcheck
