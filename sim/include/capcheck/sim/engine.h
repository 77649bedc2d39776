// The simulated inference engine: TensorRT-LLM's PyTorch executor loop
// (PyExecutor with or without the overlap scheduler) reduced to the state
// that decides what a CUDA-graph capture sees. Each iteration yields the
// Scenario the model engine would hand to CUDAGraphRunner; complete() applies
// the iteration's outcome. Deterministic: the same config and the same calls
// give the same iterations and the same state_hash() on every machine.
//
// Note [host lag under the overlap scheduler]: PyExecutor._executor_loop_overlap
// prepares iteration n+1 (_prepare_tp_inputs) while iteration n runs, and only
// then applies n's sampled tokens on the host (update_requests). So for a
// generation request the host's token count T_host is the true count before
// iteration n's new tokens (new_tokens_lens = accepted + 1). The host writes
//   position_ids = T_host - 1 + j            (j = 0..draft_len)
//   kv_lens      = (T_host - 1 + draft_len + 1) + (1 + draft_len)
// (num_cached_tokens_per_seq = past_seen_token_num + runtime_draft_len + 1,
// kv_lens_cuda = cached + seq_len), and the device adds
//   previous_pos_id_offsets  = new_tokens_lens                   (per token)
//   previous_kv_lens_offsets = new_tokens_lens - draft_len - 1   (per request)
// in _preprocess_inputs, giving position T_true - 1 + j and kv_len
// T_true + draft_len with T_true = T_host + new_tokens_lens. A request whose
// last context chunk ran in iteration n has a previous tensor too
// (new_tokens_lens = 1: MTP's sampler accepts exactly one token for a context
// row). Padding dummies and every request without the overlap scheduler have
// no previous tensor: offsets zero and host values already true.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "capcheck/scenario.h"
#include "capcheck/sim/acceptance.h"
#include "capcheck/sim/engine_config.h"
#include "capcheck/sim/iteration.h"
#include "capcheck/sim/request.h"

namespace capcheck::sim {

/// TensorRT-LLM's CUDAGraphRunner.WARMUP_STEPS: forwards before each capture.
inline constexpr std::int32_t kWarmupSteps = 2;

class Engine {
 public:
  /// Validates `config` (UsageError). Under the startup policies the keys of
  /// startup_captures() count as captured from here on: run those scenarios
  /// before the first iteration.
  explicit Engine(EngineConfig config);

  /// Queues a request; throws UsageError when it can never run (prompt or
  /// total length beyond the limits) or too many requests were added.
  RequestId add_request(std::int32_t prompt_len, std::int32_t max_new_tokens);
  /// Ends a waiting or running request now (a client cancel); throws
  /// UsageError for an unknown or already finished id.
  void finish_request(RequestId id);
  /// Releases every captured graph (CUDAGraphRunner.clear()); later keys are
  /// captured on the fly again (except under kStartupOnly).
  void clear_graphs();

  /// The warmup captures, one Scenario per supported batch size, largest
  /// first: generation-only batches of warmup requests (one long request
  /// first, then requests of 1 + draft_len tokens), zero offsets, nothing
  /// accepted. Empty under kLazy or with CUDA graphs off.
  std::vector<Scenario> startup_captures() const;

  /// Schedules the next iteration and builds its Scenario; nullopt when no
  /// request can run. Throws UsageError while the previous one is not completed.
  std::optional<Iteration> next_iteration();
  /// Applies `iteration` (the one next_iteration() returned last; only its
  /// `index` and `accepted` are read, so a caller may overwrite `accepted` to
  /// force a history; UsageError when a count is outside 0..draft_len): context
  /// chunks advance, accepted tokens are produced, the host sees what it
  /// would see (a lag of one iteration with the overlap scheduler), finished
  /// requests leave, and the offsets for the next iteration are recorded.
  void complete(const Iteration& iteration);

  /// A 64-bit FNV-1a hash of the whole state (requests, captured keys,
  /// iteration counter, configuration seed).
  std::uint64_t state_hash() const;

  const EngineConfig& config() const { return config_; }
  /// The filtered CUDA-graph sizes (supported_batch_sizes(config())).
  const std::vector<std::int32_t>& supported_batch_sizes() const { return supported_; }
  bool is_captured(const GraphKey& key) const;
  std::int32_t captured_count() const { return static_cast<std::int32_t>(captured_.size()); }
  /// The state of any request ever added (finished ones included).
  std::optional<RequestState> request(RequestId id) const;
  /// Requests added and not yet finished (waiting ones included), in arrival order.
  const std::vector<RequestId>& live_requests() const { return live_; }
  std::int32_t live_count() const { return static_cast<std::int32_t>(live_.size()); }
  std::int64_t iterations_completed() const { return next_index_; }
  bool iteration_pending() const { return pending_.has_value(); }

 private:
  RequestState& state(RequestId id);
  std::vector<RequestState> live_states() const;
  void apply_host_update(RequestState& request, std::int32_t new_tokens);
  void mark_captured(const GraphKey& key);

  EngineConfig config_;
  AcceptanceModel acceptance_;
  std::vector<std::int32_t> supported_;
  std::vector<RequestState> requests_;  // indexed by id
  std::vector<RequestId> live_;         // arrival order, finished removed
  std::set<std::pair<std::int32_t, std::int32_t>> captured_;
  std::int64_t next_index_ = 0;
  // The iteration awaiting complete(): its index and rows (request, context
  // chunk or 0 for a generation row), so complete() trusts only `accepted`.
  struct PendingRow {
    RequestId id = 0;
    std::int32_t context_tokens = 0;
  };
  std::optional<std::int64_t> pending_;
  std::vector<PendingRow> pending_rows_;
};

}  // namespace capcheck::sim
