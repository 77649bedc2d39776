#include "capcheck/sim/engine_config.h"

#include <string>

#include "capcheck/errors.h"
#include "capcheck/sim/batch_sizes.h"

namespace capcheck::sim {

namespace {

constexpr std::string_view kCapturePolicyNames[kCapturePolicyCount] = {"startup", "lazy",
                                                                       "startup-only"};

void check_range(const char* field, std::int64_t value, std::int64_t lo, std::int64_t hi,
                 const char* why = nullptr) {
  if (value < lo || value > hi) {
    std::string message = std::string("invalid engine config: ") + field + " is " +
                          std::to_string(value) + ", allowed " + std::to_string(lo) + ".." +
                          std::to_string(hi);
    if (why != nullptr) message += std::string(" (") + why + ")";
    throw UsageError(message);
  }
}

}  // namespace

std::string_view capture_policy_name(CapturePolicy policy) {
  return kCapturePolicyNames[static_cast<int>(policy)];
}

CapturePolicy parse_capture_policy(std::string_view name) {
  std::string allowed;
  for (int i = 0; i < kCapturePolicyCount; ++i) {
    if (kCapturePolicyNames[i] == name) return static_cast<CapturePolicy>(i);
    allowed += (i ? ", " : "") + std::string(kCapturePolicyNames[i]);
  }
  throw UsageError("unknown capture policy '" + std::string(name) + "'; allowed: " + allowed);
}

void validate(const EngineConfig& c) {
  check_range("max_batch_size", c.max_batch_size, 1, kBatchSizeMax);
  check_range("draft_len", c.draft_len, 0, kDraftLenMax);
  check_range("max_num_tokens", c.max_num_tokens, 1 + c.draft_len, kTokensMax,
              "one generation request needs 1 + draft_len tokens");
  check_range("max_seq_len", c.max_seq_len, 2, kMaxSeqLenMax);
  if (c.chunked_prefill) {
    check_range("chunk_size", c.chunk_size, 1, kSeqLenMax,
                "a context chunk is one Scenario sequence");
  }
  check_range("cuda_graph_max_batch_size", c.cuda_graph_max_batch_size, 1, kBatchSizeMax);
  for (std::size_t i = 0; i < c.cuda_graph_batch_sizes.size(); ++i) {
    const std::string field = "cuda_graph_batch_sizes[" + std::to_string(i) + "]";
    check_range(field.c_str(), c.cuda_graph_batch_sizes[i], 1, kBatchSizeMax);
    if (i > 0 && c.cuda_graph_batch_sizes[i] <= c.cuda_graph_batch_sizes[i - 1]) {
      throw UsageError("invalid engine config: " + field + " is " +
                       std::to_string(c.cuda_graph_batch_sizes[i]) +
                       "; the sizes must be strictly ascending");
    }
  }
  check_range("capture", static_cast<int>(c.capture), 0, kCapturePolicyCount - 1);
  check_range("acceptance_percent", c.acceptance_percent, 0, 100);
  check_range("vocab_size", c.vocab_size, 1, kVocabSizeMax);
  check_range("protocol", static_cast<int>(c.protocol), 0, kProtocolCount - 1);
  check_range("mutant", static_cast<int>(c.mutant), 0, kMutantCount - 1);
}

std::vector<std::int32_t> supported_batch_sizes(const EngineConfig& c) {
  if (!c.use_cuda_graph) return {};
  const std::vector<std::int32_t> sizes =
      c.cuda_graph_batch_sizes.empty()
          ? generate_cuda_graph_batch_sizes(c.cuda_graph_max_batch_size, c.cuda_graph_padding)
          : c.cuda_graph_batch_sizes;
  return filter_cuda_graph_batch_sizes(sizes, c.max_batch_size, c.max_num_tokens, c.draft_len,
                                       c.cuda_graph_padding);
}

std::int32_t active_requests_max(const EngineConfig& c) {
  return max_cuda_graph_batch_size(c.max_batch_size, c.max_num_tokens, c.draft_len);
}

}  // namespace capcheck::sim
