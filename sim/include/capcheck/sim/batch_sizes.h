// CUDA-graph batch sizes: which sizes an engine captures, which survive the
// executor's limits, and how a generation-only batch is padded to one of them.
// Mirrors TensorRT-LLM: CudaGraphConfig._generate_cuda_graph_batch_sizes
// (llmapi/llm_args.py), _filter_cuda_graph_batch_sizes (pyexecutor/model_engine.py),
// CUDAGraphRunner._round_up_batch_size and _get_padded_batch (pyexecutor/cuda_graph_runner.py).
#pragma once

#include <cstdint>
#include <vector>

namespace capcheck::sim {

/// TensorRT-LLM's CudaGraphConfig.max_batch_size default (0 means 128).
inline constexpr std::int32_t kDefaultCudaGraphMaxBatchSize = 128;

/// The default list of sizes for a CUDA-graph max batch size. With padding:
/// 1, 2, 4, then multiples of 8 up to 128, powers of two from 256 below
/// `max_batch_size`, and `max_batch_size` itself; without padding: 1..31, 32,
/// 64, 128, the same powers of two, and `max_batch_size`. Sorted, all <= max.
std::vector<std::int32_t> generate_cuda_graph_batch_sizes(std::int32_t max_batch_size,
                                                          bool padding_enabled);

/// The largest batch a pure generation batch can have:
/// min(max_batch_size, max_num_tokens / (1 + draft_len)).
std::int32_t max_cuda_graph_batch_size(std::int32_t max_batch_size, std::int32_t max_num_tokens,
                                       std::int32_t draft_len);

/// Keeps the sizes (sorted ascending) that are <= max_cuda_graph_batch_size();
/// with padding, the first size above it is replaced by that maximum itself
/// (unless it is already the last kept size), so batches up to it can still pad.
std::vector<std::int32_t> filter_cuda_graph_batch_sizes(const std::vector<std::int32_t>& sizes,
                                                        std::int32_t max_batch_size,
                                                        std::int32_t max_num_tokens,
                                                        std::int32_t draft_len,
                                                        bool padding_enabled);

/// The smallest supported size >= `batch_size`, or 0 when there is none.
std::int32_t round_up_batch_size(const std::vector<std::int32_t>& supported,
                                 std::int32_t batch_size);

/// How many padding dummies a generation-only batch of `batch_size` requests
/// gets: the gap to round_up_batch_size(), or 0 when padding is off, the batch
/// is larger than every supported size, it is already a supported size, or
/// the padded batch would exceed `max_batch_size`.
std::int32_t padding_size(const std::vector<std::int32_t>& supported, bool padding_enabled,
                          std::int32_t batch_size, std::int32_t max_batch_size);

}  // namespace capcheck::sim
