// One request of the simulated engine: its prompt, its progress through
// prefill and generation, and what the device and the host each know of it.
#pragma once

#include <cstdint>
#include <string_view>

namespace capcheck::sim {

/// Engine-assigned, in arrival order from 0.
using RequestId = std::int64_t;
/// The id reported for CUDA-graph padding rows (TensorRT-LLM uses 2^64 - 1).
inline constexpr RequestId kDummyRequestId = -1;

enum class RequestPhase : std::uint8_t {
  kWaiting = 0,     // added, not yet scheduled
  kContext = 1,     // prefill in progress (possibly over several chunks)
  kGeneration = 2,  // prompt fully in the KV cache; decoding
  kFinished = 3,    // the host saw max_new_tokens, or finish_request() ended it
};

/// "waiting", "context", "generation", "finished".
std::string_view request_phase_name(RequestPhase phase);

/// A request's state. Token counts are TensorRT-LLM's `max_beam_num_tokens`
/// (prompt + generated), seen from two sides:
///  - `device_tokens`: what the device has produced (every iteration's
///    new_tokens_lens, not capped at max_new_tokens: the device does not know the cap);
///  - `host_tokens`: what the host's sampler has recorded (capped by the stop
///    criteria). With the overlap scheduler it lags the device by the last
///    iteration's new tokens (`pending_new_tokens`).
struct RequestState {
  RequestId id = 0;
  std::int32_t prompt_len = 1;
  std::int32_t max_new_tokens = 1;
  /// Prompt tokens already in the KV cache (TensorRT-LLM context_current_position).
  std::int32_t context_pos = 0;
  bool admitted = false;
  bool finished = false;
  std::int32_t device_tokens = 1;
  std::int32_t host_tokens = 1;
  /// Overlap scheduler: tokens the last iteration produced that the host has not applied.
  std::int32_t pending_new_tokens = 0;
  /// new_tokens_lens of this request in the previous iteration (accepted + 1,
  /// or 1 after its last context chunk); 0 when it has no previous tensor.
  std::int32_t previous_new_tokens_lens = 0;

  RequestPhase phase() const;
  /// Tokens generated so far as the host counts them (0..max_new_tokens).
  std::int32_t generated_tokens() const { return host_tokens - prompt_len; }
};

}  // namespace capcheck::sim
