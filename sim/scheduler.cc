#include "capcheck/sim/scheduler.h"

#include <algorithm>

#include "capcheck/errors.h"

namespace capcheck::sim {

std::int32_t ScheduledBatch::num_tokens() const {
  std::int32_t tokens = 0;
  for (const auto& r : context_requests) tokens += r.num_tokens;
  for (const auto& r : generation_requests) tokens += r.num_tokens;
  return tokens;
}

std::int32_t ScheduledBatch::num_chunked_ctx_requests() const {
  return static_cast<std::int32_t>(
      std::count_if(context_requests.begin(), context_requests.end(),
                    [](const ScheduledRequest& r) { return !r.last_chunk; }));
}

ScheduledBatch schedule(const EngineConfig& config, const std::vector<RequestState>& live) {
  const std::int32_t generation_tokens = 1 + config.draft_len;
  ScheduledBatch batch;
  std::int32_t active = 0;
  for (const RequestState& r : live) {
    if (r.phase() == RequestPhase::kGeneration) {
      batch.generation_requests.push_back(ScheduledRequest{r.id, generation_tokens, false});
    }
    if (r.phase() == RequestPhase::kGeneration || r.phase() == RequestPhase::kContext) ++active;
  }
  const std::int32_t active_max = active_requests_max(config);
  CAPCHECK_ASSERT(active <= active_max);
  std::int32_t slots = config.max_batch_size - batch.batch_size();
  std::int32_t budget = config.max_num_tokens - batch.num_tokens();
  CAPCHECK_ASSERT(slots >= 0);
  CAPCHECK_ASSERT(budget >= 0);

  std::vector<ScheduledRequest> contexts;
  for (const RequestState& r : live) {
    const RequestPhase phase = r.phase();
    if (phase != RequestPhase::kContext && phase != RequestPhase::kWaiting) continue;
    if (slots == 0) break;
    if (phase == RequestPhase::kWaiting && active >= active_max) break;
    const std::int32_t remaining = r.prompt_len - r.context_pos;
    CAPCHECK_ASSERT(remaining >= 1);
    std::int32_t chunk = remaining;
    if (config.chunked_prefill) {
      chunk = std::min({remaining, config.chunk_size, budget});
      if (chunk < 1) break;
    } else if (remaining > budget) {
      break;
    }
    contexts.push_back(ScheduledRequest{r.id, chunk, chunk == remaining});
    if (phase == RequestPhase::kWaiting) {
      batch.admitted.push_back(r.id);
      ++active;
    }
    --slots;
    budget -= chunk;
  }
  std::stable_partition(contexts.begin(), contexts.end(),
                        [](const ScheduledRequest& r) { return !r.last_chunk; });
  batch.context_requests = std::move(contexts);

  CAPCHECK_ASSERT(batch.batch_size() <= config.max_batch_size);
  CAPCHECK_ASSERT(batch.num_tokens() <= config.max_num_tokens);
  return batch;
}

}  // namespace capcheck::sim
