// The scheduler: which requests run in the next iteration and how many prompt
// tokens each context request processes. Models TensorRT-LLM's
// GUARANTEED_NO_EVICT capacity scheduler plus MicroBatchScheduler
// (batch_manager/microBatchScheduler.cpp, utils/inflightBatchingUtils.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "capcheck/sim/engine_config.h"
#include "capcheck/sim/request.h"

namespace capcheck::sim {

/// One scheduled request.
struct ScheduledRequest {
  RequestId id = 0;
  /// Tokens this request feeds to the forward: its chunk for a context
  /// request, 1 + draft_len for a generation request.
  std::int32_t num_tokens = 0;
  /// Context requests: the chunk reaches the end of the prompt, so the
  /// request becomes a generation request after this iteration.
  bool last_chunk = false;
};

/// The requests of one iteration, in forward order.
struct ScheduledBatch {
  /// Not-last chunks first, then last chunks (TensorRT-LLM's sortRequests
  /// partition, "required for moveFinishedContextRequestsToGeneration");
  /// arrival order within each group.
  std::vector<ScheduledRequest> context_requests;
  /// Arrival order.
  std::vector<ScheduledRequest> generation_requests;
  /// Waiting requests this iteration admits (their first chunk is scheduled).
  std::vector<RequestId> admitted;

  /// Requests in the batch (no padding: that is the CUDA-graph runner's).
  std::int32_t batch_size() const {
    return static_cast<std::int32_t>(context_requests.size() + generation_requests.size());
  }
  /// Tokens the forward processes: context chunks plus 1 + draft_len per generation request.
  std::int32_t num_tokens() const;
  /// Context requests whose chunk is not their last (still unfinished after this iteration).
  std::int32_t num_chunked_ctx_requests() const;
  /// No context requests: a CUDA-graph candidate.
  bool generation_only() const { return context_requests.empty(); }
};

/// Schedules `live` (waiting, context and generation requests, in arrival
/// order; finished ones are ignored):
///  1. every generation request runs (1 + draft_len tokens each);
///  2. context requests in arrival order take the remaining slots and token
///     budget: a chunk of min(remaining prompt, chunk_size, budget) with
///     chunked prefill, else the whole remaining prompt if it fits; the first
///     request that cannot be scheduled stops the scan (first come, first served);
///  3. a waiting request is admitted only while fewer than
///     active_requests_max() requests are active, so that every active
///     generation request fits every later iteration.
ScheduledBatch schedule(const EngineConfig& config, const std::vector<RequestState>& live);

}  // namespace capcheck::sim
