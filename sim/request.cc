#include "capcheck/sim/request.h"

namespace capcheck::sim {

std::string_view request_phase_name(RequestPhase phase) {
  switch (phase) {
    case RequestPhase::kWaiting: return "waiting";
    case RequestPhase::kContext: return "context";
    case RequestPhase::kGeneration: return "generation";
    case RequestPhase::kFinished: return "finished";
  }
  return "unknown";
}

RequestPhase RequestState::phase() const {
  if (finished) return RequestPhase::kFinished;
  if (!admitted) return RequestPhase::kWaiting;
  if (context_pos < prompt_len) return RequestPhase::kContext;
  return RequestPhase::kGeneration;
}

}  // namespace capcheck::sim
