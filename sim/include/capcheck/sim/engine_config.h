// The configuration of the simulated engine: executor limits, speculative
// decoding, overlap scheduler, chunked prefill, CUDA-graph sizes and capture
// policy. Field names follow TensorRT-LLM's LLM arguments where one exists.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "capcheck/scenario.h"

namespace capcheck::sim {

/// When CUDA graphs are captured.
enum class CapturePolicy : std::uint8_t {
  /// Every supported size at start-up with zero offsets (TensorRT-LLM's
  /// PyTorchModelEngine.warmup), plus on-the-fly capture of a key that is
  /// missing at runtime (after clear_graphs()), as CUDAGraphRunner does.
  kStartup = 0,
  /// Nothing at start-up; each key is captured the first time a runtime batch
  /// needs it, with that iteration's offsets.
  kLazy = 1,
  /// Start-up capture only: a key missing at runtime runs eagerly (an engine
  /// that never captures while serving; upstream still captures lazily during
  /// serving, see the review of PR #17238).
  kStartupOnly = 2,
};
inline constexpr int kCapturePolicyCount = 3;

/// Stable names: "startup", "lazy", "startup-only".
std::string_view capture_policy_name(CapturePolicy policy);
/// Throws UsageError listing the allowed names.
CapturePolicy parse_capture_policy(std::string_view name);

/// Limits of the simulator itself (besides the Scenario limits it must respect).
inline constexpr std::int32_t kMaxSeqLenMax = 1 << 18;
inline constexpr std::int64_t kRequestsMax = 1 << 20;
inline constexpr std::int32_t kVocabSizeMax = 1 << 30;

struct EngineConfig {
  /// Requests per iteration (TensorRT-LLM max_batch_size).
  std::int32_t max_batch_size = 16;
  /// Tokens per iteration (TensorRT-LLM max_num_tokens); a generation request
  /// costs 1 + draft_len.
  std::int32_t max_num_tokens = 512;
  /// Longest sequence (prompt + generated); also sizes the warmup's long request.
  std::int32_t max_seq_len = 2048;
  /// Draft tokens per generation request; 0 turns speculative decoding off.
  std::int32_t draft_len = 3;
  /// The overlap scheduler: iteration n+1 is prepared before n's accepted
  /// tokens reach the host, so the device corrects positions and kv_lens.
  bool overlap_scheduler = true;
  /// One-model speculative decoding's draft loop runs inside the forward
  /// (only meaningful with draft_len >= 1).
  bool draft_loop = true;
  /// Split long prompts across iterations.
  bool chunked_prefill = true;
  /// Most prompt tokens one context request processes per iteration.
  std::int32_t chunk_size = 64;
  /// CUDA graphs on (TensorRT-LLM cuda_graph_config present).
  bool use_cuda_graph = true;
  /// Pad generation-only batches up to the next supported size.
  bool cuda_graph_padding = true;
  /// Sizes to capture, ascending; empty means TensorRT-LLM's default list for
  /// `cuda_graph_max_batch_size` (see generate_cuda_graph_batch_sizes()).
  std::vector<std::int32_t> cuda_graph_batch_sizes;
  /// Upper end of the default list when `cuda_graph_batch_sizes` is empty.
  std::int32_t cuda_graph_max_batch_size = 128;
  CapturePolicy capture = CapturePolicy::kStartup;
  /// Seeds the acceptance model and the synthetic token ids.
  std::uint64_t acceptance_seed = 0;
  /// Chance, in percent, that each draft token is accepted given the previous one was.
  std::int32_t acceptance_percent = 60;
  /// Token ids are drawn from [0, vocab_size).
  std::int32_t vocab_size = 32000;
  /// Copied into every Scenario the engine builds.
  Protocol protocol = Protocol::kReference;
  Mutant mutant = Mutant::kNone;
};

/// Throws UsageError naming the first field that is out of range or
/// inconsistent with another (and with the Scenario limits every iteration
/// must respect), with what is allowed.
void validate(const EngineConfig& config);

/// The CUDA-graph batch sizes this engine supports: the configured (or
/// default) list filtered by filter_cuda_graph_batch_sizes(). Empty when CUDA
/// graphs are off.
std::vector<std::int32_t> supported_batch_sizes(const EngineConfig& config);

/// Most requests active at once: min(max_batch_size, max_num_tokens / (1 + draft_len)),
/// so that every active generation request fits every iteration.
std::int32_t active_requests_max(const EngineConfig& config);

}  // namespace capcheck::sim
