#include "capcheck/sim/batch_sizes.h"

#include <algorithm>

#include "capcheck/errors.h"

namespace capcheck::sim {

std::vector<std::int32_t> generate_cuda_graph_batch_sizes(std::int32_t max_batch_size,
                                                          bool padding_enabled) {
  CAPCHECK_ASSERT(max_batch_size >= 1);
  std::vector<std::int32_t> sizes;
  if (padding_enabled) {
    sizes = {1, 2, 4};
    for (std::int32_t i = 1; i <= 16; ++i) sizes.push_back(8 * i);
  } else {
    for (std::int32_t i = 1; i < 32; ++i) sizes.push_back(i);
    sizes.insert(sizes.end(), {32, 64, 128});
  }
  // Powers of two 2^8 .. 2^(ceil(log2(max_batch_size)) - 1), computed in
  // integers: 2^i < max_batch_size exactly when i < ceil(log2(max_batch_size)).
  for (std::int64_t power = 256; power < max_batch_size; power *= 2) {
    sizes.push_back(static_cast<std::int32_t>(power));
  }
  sizes.erase(std::remove_if(sizes.begin(), sizes.end(),
                             [&](std::int32_t size) { return size > max_batch_size; }),
              sizes.end());
  std::sort(sizes.begin(), sizes.end());
  if (sizes.empty() || sizes.back() != max_batch_size) sizes.push_back(max_batch_size);
  return sizes;
}

std::int32_t max_cuda_graph_batch_size(std::int32_t max_batch_size, std::int32_t max_num_tokens,
                                       std::int32_t draft_len) {
  CAPCHECK_ASSERT(draft_len >= 0);
  return std::min(max_batch_size, max_num_tokens / (1 + draft_len));
}

std::vector<std::int32_t> filter_cuda_graph_batch_sizes(const std::vector<std::int32_t>& sizes,
                                                        std::int32_t max_batch_size,
                                                        std::int32_t max_num_tokens,
                                                        std::int32_t draft_len,
                                                        bool padding_enabled) {
  CAPCHECK_ASSERT(std::is_sorted(sizes.begin(), sizes.end()));
  const std::int32_t max_size = max_cuda_graph_batch_size(max_batch_size, max_num_tokens, draft_len);
  std::vector<std::int32_t> result;
  for (const std::int32_t size : sizes) {
    if (size <= max_size) {
      result.push_back(size);
      continue;
    }
    if (padding_enabled && (result.empty() || result.back() != max_size)) {
      result.push_back(max_size);
    }
    break;
  }
  return result;
}

std::int32_t round_up_batch_size(const std::vector<std::int32_t>& supported,
                                 std::int32_t batch_size) {
  const auto it = std::lower_bound(supported.begin(), supported.end(), batch_size);
  return it == supported.end() ? 0 : *it;
}

std::int32_t padding_size(const std::vector<std::int32_t>& supported, bool padding_enabled,
                          std::int32_t batch_size, std::int32_t max_batch_size) {
  if (!padding_enabled || supported.empty() || batch_size > supported.back()) return 0;
  const std::int32_t padded = round_up_batch_size(supported, batch_size);
  if (padded == 0 || padded == batch_size) return 0;
  if (padded > max_batch_size) return 0;
  return padded - batch_size;
}

}  // namespace capcheck::sim
