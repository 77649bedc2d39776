#include "capcheck/sim/iteration.h"

#include <sstream>

namespace capcheck::sim {

namespace {

template <typename T>
std::string list(const std::vector<T>& values, std::size_t shown_max = 12) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < values.size() && i < shown_max; ++i) {
    out << (i ? "," : "") << values[i];
  }
  if (values.size() > shown_max) out << ",...(" << values.size() << ")";
  out << ']';
  return out.str();
}

std::string rows(const std::vector<RequestId>& ids) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < ids.size() && i < 12; ++i) {
    out << (i ? "," : "");
    if (ids[i] == kDummyRequestId) out << "dummy"; else out << 'r' << ids[i];
  }
  if (ids.size() > 12) out << ",...(" << ids.size() << ")";
  out << ']';
  return out.str();
}

}  // namespace

std::string_view graph_action_name(GraphAction action) {
  switch (action) {
    case GraphAction::kEager: return "eager";
    case GraphAction::kCapture: return "capture";
    case GraphAction::kReplay: return "replay";
  }
  return "unknown";
}

std::string Iteration::describe() const {
  std::ostringstream out;
  out << "iteration " << index << ": " << num_contexts << " context (" << num_chunked_ctx_requests
      << " chunked) + " << (num_generations - num_dummy_requests) << " generation";
  if (num_dummy_requests > 0) out << " + " << num_dummy_requests << " dummy";
  out << " -> " << graph_action_name(action);
  if (runs_as_graph) {
    out << " key=(" << key.batch_size << "," << key.draft_len << ")";
  }
  out << " rows=" << rows(request_ids) << " seq_lens=" << list(scenario.seq_lens)
      << " kv_lens=" << list(scenario.kv_lens);
  if (!scenario.offsets_are_zero()) {
    out << " pos_offsets=" << list(scenario.previous_pos_id_offsets)
        << " kv_offsets=" << list(scenario.previous_kv_lens_offsets);
  }
  if (scenario.key.draft_len > 0 && !accepted.empty()) out << " accepted=" << list(accepted);
  return out.str();
}

}  // namespace capcheck::sim
