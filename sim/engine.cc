#include "capcheck/sim/engine.h"

#include <algorithm>
#include <string>

#include "capcheck/errors.h"
#include "capcheck/hash.h"
#include "capcheck/sim/batch_sizes.h"
#include "capcheck/sim/scheduler.h"

namespace capcheck::sim {

namespace {

// TensorRT-LLM's dummy requests carry token id 1 (KVCacheManager.add_dummy_requests).
constexpr std::int32_t kDummyTokenId = 1;

// One generation row as the host prepares it, plus what the device makes of it.
struct GenerationRow {
  std::int32_t past = 0;            // past_seen_token_num: host position of the first token
  std::int32_t host_kv_len = 0;     // num_cached_tokens_per_seq + seq_len
  std::int32_t pos_offset = 0;      // previous_pos_id_offsets (each token)
  std::int32_t kv_offset = 0;       // previous_kv_lens_offsets
  std::int32_t true_position = 0;   // position of the first token on the device
  std::int32_t true_kv_len = 0;
};

// The host bookkeeping of PyTorchModelEngine._prepare_tp_inputs for one
// generation request; see Note [host lag under the overlap scheduler] in engine.h.
GenerationRow prepare_generation_row(const EngineConfig& config, const RequestState& r) {
  const std::int32_t d = config.draft_len;
  const bool previous_tensor = config.overlap_scheduler && r.previous_new_tokens_lens > 0;
  GenerationRow row;
  if (previous_tensor && d > 0) {
    // extend_requests branch, request with a previous tensor.
    row.past = r.host_tokens - 1;
    row.host_kv_len = (row.past + d + 1) + (1 + d);
    row.pos_offset = r.previous_new_tokens_lens;
    row.kv_offset = r.previous_new_tokens_lens - d - 1;
  } else if (previous_tensor) {
    // generation_requests branch (no speculative decoding): the host lags by
    // exactly one token and uses past_seen_token_num = max_beam_num_tokens.
    CAPCHECK_ASSERT(r.previous_new_tokens_lens == 1);
    row.past = r.host_tokens;
    row.host_kv_len = row.past + 1;
  } else {
    // No previous tensor: the host is current.
    CAPCHECK_ASSERT(r.pending_new_tokens == 0);
    row.past = r.host_tokens - 1;
    row.host_kv_len = row.past + 1 + d;
  }
  row.true_position = r.device_tokens - 1;
  row.true_kv_len = r.device_tokens + d;
  // The invariant the whole overlap path exists for: host + offsets = truth.
  CAPCHECK_ASSERT(row.past + row.pos_offset == row.true_position);
  CAPCHECK_ASSERT(row.host_kv_len + row.kv_offset == row.true_kv_len);
  return row;
}

// A generation-phase row of `token_num` tokens with no previous tensor, as
// KVCacheManager.add_dummy_requests(is_gen=True) builds it: prompt of
// token_num - 1 tokens plus draft_len dummy drafts, all token id 1.
void append_dummy_row(Scenario& s, std::int32_t token_num, std::int32_t draft_len) {
  const std::int32_t past = token_num - 1;
  s.seq_lens.push_back(1 + draft_len);
  s.kv_lens.push_back(past + 1 + draft_len);
  for (std::int32_t j = 0; j <= draft_len; ++j) {
    s.position_ids.push_back(past + j);
    s.input_ids.push_back(kDummyTokenId);
    s.previous_pos_id_offsets.push_back(0);
  }
  s.previous_kv_lens_offsets.push_back(0);
  s.num_accepted_tokens.push_back(0);
}

Scenario empty_scenario(const EngineConfig& config) {
  Scenario s;
  s.protocol = config.protocol;
  s.mutant = config.mutant;
  s.warmups_count = kWarmupSteps;
  s.draft_loop = config.draft_loop && config.draft_len > 0;
  s.num_contexts = 0;
  s.num_chunked_ctx_requests = 0;
  s.num_generations = 0;
  s.num_dummy_requests = 0;
  s.seq_lens.clear();
  s.kv_lens.clear();
  s.previous_pos_id_offsets.clear();
  s.previous_kv_lens_offsets.clear();
  s.input_ids.clear();
  s.position_ids.clear();
  s.num_accepted_tokens.clear();
  return s;
}

// Our own postcondition: a Scenario the engine built must validate.
void check_built(const Scenario& s) {
  try {
    validate(s);
  } catch (const UsageError& e) {
    throw InternalError(std::string("engine simulator built an invalid scenario: ") + e.what());
  }
}

}  // namespace

Engine::Engine(EngineConfig config)
    : config_((validate(config), std::move(config))),
      acceptance_(config_.acceptance_seed, config_.acceptance_percent),
      supported_(sim::supported_batch_sizes(config_)) {
  if (config_.capture != CapturePolicy::kLazy) {
    for (const std::int32_t size : supported_) mark_captured(GraphKey{size, config_.draft_len});
  }
}

RequestId Engine::add_request(std::int32_t prompt_len, std::int32_t max_new_tokens) {
  if (static_cast<std::int64_t>(requests_.size()) >= kRequestsMax) {
    throw UsageError("too many requests: the simulator holds at most " +
                     std::to_string(kRequestsMax));
  }
  if (prompt_len < 1 || max_new_tokens < 1) {
    throw UsageError("request needs prompt_len >= 1 and max_new_tokens >= 1, got " +
                     std::to_string(prompt_len) + " and " + std::to_string(max_new_tokens));
  }
  if (static_cast<std::int64_t>(prompt_len) + max_new_tokens > config_.max_seq_len) {
    throw UsageError("request of prompt_len " + std::to_string(prompt_len) + " + max_new_tokens " +
                     std::to_string(max_new_tokens) + " exceeds max_seq_len " +
                     std::to_string(config_.max_seq_len));
  }
  if (!config_.chunked_prefill) {
    const std::int32_t prompt_max = std::min(config_.max_num_tokens, kSeqLenMax);
    if (prompt_len > prompt_max) {
      throw UsageError("prompt_len " + std::to_string(prompt_len) +
                       " can never be scheduled without chunked prefill; allowed 1.." +
                       std::to_string(prompt_max) + " (min of max_num_tokens and " +
                       std::to_string(kSeqLenMax) + "), or turn chunked_prefill on");
    }
  }
  RequestState r;
  r.id = static_cast<RequestId>(requests_.size());
  r.prompt_len = prompt_len;
  r.max_new_tokens = max_new_tokens;
  r.device_tokens = prompt_len;
  r.host_tokens = prompt_len;
  requests_.push_back(r);
  live_.push_back(r.id);
  return r.id;
}

void Engine::finish_request(RequestId id) {
  if (id < 0 || id >= static_cast<RequestId>(requests_.size())) {
    throw UsageError("finish_request: unknown request id " + std::to_string(id));
  }
  RequestState& r = state(id);
  if (r.finished) {
    throw UsageError("finish_request: request " + std::to_string(id) + " already finished");
  }
  r.finished = true;
  live_.erase(std::find(live_.begin(), live_.end(), id));
}

void Engine::clear_graphs() { captured_.clear(); }

bool Engine::is_captured(const GraphKey& key) const {
  return captured_.count({key.batch_size, key.draft_len}) > 0;
}

void Engine::mark_captured(const GraphKey& key) {
  captured_.insert({key.batch_size, key.draft_len});
}

std::optional<RequestState> Engine::request(RequestId id) const {
  if (id < 0 || id >= static_cast<RequestId>(requests_.size())) return std::nullopt;
  return requests_[static_cast<std::size_t>(id)];
}

RequestState& Engine::state(RequestId id) {
  CAPCHECK_ASSERT(id >= 0);
  CAPCHECK_ASSERT(id < static_cast<RequestId>(requests_.size()));
  return requests_[static_cast<std::size_t>(id)];
}

std::vector<RequestState> Engine::live_states() const {
  std::vector<RequestState> states;
  states.reserve(live_.size());
  for (const RequestId id : live_) states.push_back(requests_[static_cast<std::size_t>(id)]);
  return states;
}

std::vector<Scenario> Engine::startup_captures() const {
  std::vector<Scenario> captures;
  if (config_.capture == CapturePolicy::kLazy) return captures;
  const std::int32_t d = config_.draft_len;
  for (auto it = supported_.rbegin(); it != supported_.rend(); ++it) {
    const std::int32_t batch_size = *it;
    Scenario s = empty_scenario(config_);
    s.key = GraphKey{batch_size, d};
    s.num_generations = batch_size;
    // get_cuda_graph_warmup_request: the longest possible request first
    // (max_seq_len - 1 tokens; the simulator has no KV-cache capacity limit),
    // then batch_size - 1 requests of 1 + draft_len tokens.
    append_dummy_row(s, config_.max_seq_len - 1, d);
    for (std::int32_t row = 1; row < batch_size; ++row) append_dummy_row(s, 1 + d, d);
    check_built(s);
    captures.push_back(std::move(s));
  }
  return captures;
}

std::optional<Iteration> Engine::next_iteration() {
  if (pending_) {
    throw UsageError("next_iteration: iteration " + std::to_string(*pending_) +
                     " has not been completed; call complete() first");
  }
  const ScheduledBatch batch = schedule(config_, live_states());
  if (batch.batch_size() == 0) return std::nullopt;
  for (const RequestId id : batch.admitted) state(id).admitted = true;

  const std::int32_t d = config_.draft_len;
  const bool graph_candidate = config_.use_cuda_graph && batch.generation_only();
  const std::int32_t dummies =
      graph_candidate ? padding_size(supported_, config_.cuda_graph_padding, batch.batch_size(),
                                     config_.max_batch_size)
                      : 0;

  Iteration it;
  it.index = next_index_;
  it.num_contexts = static_cast<std::int32_t>(batch.context_requests.size());
  it.num_chunked_ctx_requests = batch.num_chunked_ctx_requests();
  it.num_generations = static_cast<std::int32_t>(batch.generation_requests.size()) + dummies;
  it.num_dummy_requests = dummies;
  const std::int32_t padded = batch.batch_size() + dummies;

  // CUDAGraphRunner.maybe_get_cuda_graph: a captured key replays; an
  // uncaptured supported size is captured on the fly (unless disabled).
  if (graph_candidate) {
    const GraphKey key{padded, d};
    const bool supported = std::binary_search(supported_.begin(), supported_.end(), padded);
    if (is_captured(key)) {
      it.action = GraphAction::kReplay;
    } else if (supported && config_.capture != CapturePolicy::kStartupOnly) {
      it.action = GraphAction::kCapture;
      mark_captured(key);
    }
  }
  it.runs_as_graph = it.action != GraphAction::kEager;

  Scenario& s = it.scenario;
  s = empty_scenario(config_);
  s.key = GraphKey{padded, d};
  s.num_contexts = it.num_contexts;
  s.num_generations = it.num_generations;
  s.num_dummy_requests = dummies;
  // attn_metadata.num_chunked_ctx_requests counts extend-context requests
  // (two-model speculative decoding), never prefill chunks: 0 here.
  s.num_chunked_ctx_requests = 0;

  for (const ScheduledRequest& c : batch.context_requests) {
    const RequestState& r = state(c.id);
    s.seq_lens.push_back(c.num_tokens);
    s.kv_lens.push_back(r.context_pos + c.num_tokens);
    for (std::int32_t j = 0; j < c.num_tokens; ++j) {
      const std::int32_t position = r.context_pos + j;
      s.position_ids.push_back(position);
      s.input_ids.push_back(acceptance_.token_id(r.id, position, config_.vocab_size));
    }
    it.request_ids.push_back(r.id);
    it.true_kv_lens.push_back(s.kv_lens.back());
  }
  it.true_position_ids = s.position_ids;

  for (const ScheduledRequest& g : batch.generation_requests) {
    const RequestState& r = state(g.id);
    const GenerationRow row = prepare_generation_row(config_, r);
    s.seq_lens.push_back(1 + d);
    s.kv_lens.push_back(row.host_kv_len);
    for (std::int32_t j = 0; j <= d; ++j) {
      s.position_ids.push_back(row.past + j);
      s.previous_pos_id_offsets.push_back(row.pos_offset);
      s.input_ids.push_back(
          acceptance_.token_id(r.id, row.true_position + j, config_.vocab_size));
      it.true_position_ids.push_back(row.true_position + j);
    }
    s.previous_kv_lens_offsets.push_back(row.kv_offset);
    s.num_accepted_tokens.push_back(acceptance_.accepted(r.id, it.index, d));
    it.request_ids.push_back(r.id);
    it.true_kv_lens.push_back(row.true_kv_len);
  }
  for (std::int32_t k = 0; k < dummies; ++k) {
    // The shared padding dummy: 1 + draft_len tokens, no previous tensor.
    append_dummy_row(s, 1 + d, d);
    for (std::int32_t j = 0; j <= d; ++j) it.true_position_ids.push_back(d + j);
    it.request_ids.push_back(kDummyRequestId);
    it.true_kv_lens.push_back(s.kv_lens.back());
  }
  it.accepted = s.num_accepted_tokens;
  check_built(s);
  CAPCHECK_ASSERT(static_cast<std::int32_t>(it.request_ids.size()) == s.num_seqs());
  CAPCHECK_ASSERT(it.true_position_ids.size() == s.position_ids.size());
  it.key = s.key;
  pending_ = it.index;
  pending_rows_.clear();
  for (std::int32_t row = 0; row < s.num_seqs(); ++row) {
    pending_rows_.push_back(PendingRow{it.request_ids[static_cast<std::size_t>(row)],
                                       row < s.num_contexts ? s.seq_lens[static_cast<std::size_t>(row)]
                                                            : 0});
  }
  return it;
}

void Engine::apply_host_update(RequestState& r, std::int32_t new_tokens) {
  CAPCHECK_ASSERT(new_tokens >= 0);
  const std::int32_t total_max = r.prompt_len + r.max_new_tokens;
  // The sampler's stop criteria: tokens past max_new_tokens are dropped.
  r.host_tokens = std::min(r.host_tokens + new_tokens, total_max);
  if (r.host_tokens == total_max) r.finished = true;
}

void Engine::complete(const Iteration& it) {
  if (!pending_ || it.index != *pending_) {
    throw UsageError("complete: iteration " + std::to_string(it.index) +
                     (pending_ ? " is not the pending one (" + std::to_string(*pending_) + ")"
                               : std::string(" was not started by next_iteration()")));
  }
  const std::int32_t d = config_.draft_len;
  const auto generations = static_cast<std::size_t>(
      std::count_if(pending_rows_.begin(), pending_rows_.end(),
                    [](const PendingRow& row) { return row.context_tokens == 0; }));
  if (it.accepted.size() != generations) {
    throw UsageError("complete: iteration " + std::to_string(it.index) + " has " +
                     std::to_string(generations) + " generation rows but " +
                     std::to_string(it.accepted.size()) + " accepted counts");
  }
  for (const std::int32_t accepted : it.accepted) {
    if (accepted < 0 || accepted > d) {
      throw UsageError("complete: accepted count " + std::to_string(accepted) +
                       " is outside 0.." + std::to_string(d) + " (draft_len)");
    }
  }

  // Tokens each scheduled request produced on the device this iteration
  // (TensorRT-LLM new_tokens_lens: 1 for a last context chunk, accepted + 1
  // for a generation request, nothing for an unfinished chunk).
  std::vector<std::pair<RequestId, std::int32_t>> produced;
  std::size_t generation = 0;
  for (const PendingRow& row : pending_rows_) {
    const bool context = row.context_tokens > 0;
    const std::int32_t accepted = context ? 0 : it.accepted[generation++];
    if (row.id == kDummyRequestId) continue;
    RequestState& r = state(row.id);
    if (r.finished) continue;  // finish_request() while the iteration ran
    std::int32_t new_tokens = 0;
    if (context) {
      r.context_pos += row.context_tokens;
      CAPCHECK_ASSERT(r.context_pos <= r.prompt_len);
      if (r.context_pos == r.prompt_len) new_tokens = 1;
    } else {
      new_tokens = accepted + 1;
    }
    r.device_tokens += new_tokens;
    produced.emplace_back(row.id, new_tokens);
  }

  // The host's view: immediately without the overlap scheduler; one
  // iteration late with it (update_requests of the previous batch runs after
  // this iteration's forward).
  for (const RequestId id : live_) {
    RequestState& r = state(id);
    r.previous_new_tokens_lens = 0;
    if (config_.overlap_scheduler) {
      const std::int32_t late = r.pending_new_tokens;
      r.pending_new_tokens = 0;
      apply_host_update(r, late);
    }
  }
  for (const auto& [id, new_tokens] : produced) {
    RequestState& r = state(id);
    if (r.finished) continue;
    r.previous_new_tokens_lens = new_tokens;
    if (config_.overlap_scheduler) {
      r.pending_new_tokens = new_tokens;
    } else {
      apply_host_update(r, new_tokens);
    }
  }
  live_.erase(std::remove_if(live_.begin(), live_.end(),
                             [&](RequestId id) { return state(id).finished; }),
              live_.end());
  ++next_index_;
  pending_.reset();
  pending_rows_.clear();
}

std::uint64_t Engine::state_hash() const {
  Fnv1a64 h;
  h.add_u64(config_.acceptance_seed);
  h.add_i64(next_index_);
  h.add_i64(pending_ ? *pending_ : -1);
  for (const PendingRow& row : pending_rows_) {
    h.add_i64(row.id);
    h.add_i64(row.context_tokens);
  }
  h.add_u64(requests_.size());
  for (const RequestState& r : requests_) {
    h.add_i64(r.id);
    h.add_i64(r.prompt_len);
    h.add_i64(r.max_new_tokens);
    h.add_i64(r.context_pos);
    h.add_u64(r.admitted ? 1 : 0);
    h.add_u64(r.finished ? 1 : 0);
    h.add_i64(r.device_tokens);
    h.add_i64(r.host_tokens);
    h.add_i64(r.pending_new_tokens);
    h.add_i64(r.previous_new_tokens_lens);
  }
  h.add_u64(live_.size());
  for (const RequestId id : live_) h.add_i64(id);
  h.add_u64(captured_.size());
  for (const auto& [batch_size, draft_len] : captured_) {
    h.add_i64(batch_size);
    h.add_i64(draft_len);
  }
  return h.value();
}

}  // namespace capcheck::sim
