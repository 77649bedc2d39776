// The model step: a deterministic 32-bit integer mix of each token's input id,
// position id and the kv_len of its sequence. Every backend computes exactly
// this function, so outputs can be compared bitwise across backends.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define CAPCHECK_HOST_DEVICE __host__ __device__
#else
#define CAPCHECK_HOST_DEVICE
#endif

namespace capcheck {

/// Multipliers are below 2^31 so that a backend computing in signed 64-bit
/// arithmetic (LibTorch has no uint32 tensors) never overflows.
inline constexpr std::uint32_t kMixMultiplier1 = 0x5bd1e995u;
inline constexpr std::uint32_t kMixMultiplier2 = 0x1b873593u;
inline constexpr std::uint32_t kMixMultiplier3 = 0x27d4eb2du;

/// Mixes one token: all three inputs influence every output bit.
CAPCHECK_HOST_DEVICE inline std::int32_t model_mix(std::int32_t input_id, std::int32_t position_id,
                                                   std::int32_t kv_len) {
  std::uint32_t h = static_cast<std::uint32_t>(input_id);
  h *= kMixMultiplier1;
  h ^= h >> 15;
  h ^= static_cast<std::uint32_t>(position_id);
  h *= kMixMultiplier2;
  h ^= h >> 13;
  h ^= static_cast<std::uint32_t>(kv_len);
  h *= kMixMultiplier3;
  h ^= h >> 16;
  return static_cast<std::int32_t>(h);
}

}  // namespace capcheck
