// One engine iteration: the scheduled batch, what the CUDA-graph runner does
// with it, and the Scenario (the host-prepared inputs) the subject runs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/scenario.h"
#include "capcheck/sim/request.h"

namespace capcheck::sim {

/// What CUDAGraphRunner does with the iteration's batch.
enum class GraphAction : std::uint8_t {
  kEager = 0,    // no graph: contexts present, unsupported size, or capture not allowed
  kCapture = 1,  // key seen for the first time: warmups + capture, then replay
  kReplay = 2,   // key already captured: replay
};

/// "eager", "capture", "replay".
std::string_view graph_action_name(GraphAction action);

struct Iteration {
  /// 0 for the first runtime iteration.
  std::int64_t index = 0;
  std::int32_t num_contexts = 0;
  /// Context requests whose chunk is not their last (chunked prefill still in
  /// progress). They come FIRST among the contexts, as TensorRT-LLM orders
  /// them. This is the scheduler's notion; the Scenario's own
  /// num_chunked_ctx_requests is 0 (see docs/simulator.md, "chunked contexts").
  std::int32_t num_chunked_ctx_requests = 0;
  /// Generation rows, padding dummies included (as in the Scenario).
  std::int32_t num_generations = 0;
  /// The last `num_dummy_requests` generation rows are padding dummies.
  std::int32_t num_dummy_requests = 0;
  bool runs_as_graph = false;
  /// (padded batch size, draft_len): the graph key when runs_as_graph.
  GraphKey key;
  GraphAction action = GraphAction::kEager;
  /// What the host prepares (position ids and kv_lens BEFORE the device adds
  /// the previous-iteration offsets) plus those offsets; validates.
  Scenario scenario;
  /// Per generation row (dummies included): draft tokens the target model
  /// accepts in this iteration; equals scenario.num_accepted_tokens. Engine::complete()
  /// applies these: overwrite them to force a particular history.
  std::vector<std::int32_t> accepted;
  /// Per row: the request, or kDummyRequestId for a padding row.
  std::vector<RequestId> request_ids;
  /// What _preprocess_inputs must produce: the true position ids and kv_lens
  /// of every row (host values plus offsets). Eager after preprocess equals these.
  std::vector<std::int32_t> true_position_ids;
  std::vector<std::int32_t> true_kv_lens;

  /// One line: index, composition, action and key, offsets, accepted counts.
  std::string describe() const;
};

}  // namespace capcheck::sim
