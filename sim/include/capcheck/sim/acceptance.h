// The seeded acceptance model of one-model speculative decoding: how many of
// a request's draft tokens the target model accepts in one iteration. Pure
// 64-bit integer arithmetic (splitmix64), so a seed gives the same run on
// every machine and compiler.
#pragma once

#include <cstdint>

namespace capcheck::sim {

/// Sebastiano Vigna's splitmix64 finalizer: a bijective 64-bit mix.
constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// Accepted draft counts as a function of (seed, request, iteration) only:
/// independent of scheduling order, batch composition and call order.
class AcceptanceModel {
 public:
  /// `percent` (0..100) is the chance that each draft token is accepted given
  /// that every earlier one was (greedy acceptance stops at the first mismatch).
  AcceptanceModel(std::uint64_t seed, std::int32_t percent);

  /// Draft tokens accepted for `request_id` in iteration `iteration`, in 0..draft_len.
  std::int32_t accepted(std::int64_t request_id, std::int64_t iteration,
                        std::int32_t draft_len) const;

  /// A synthetic token id in [0, vocab_size) for the token at `position` of `request_id`.
  std::int32_t token_id(std::int64_t request_id, std::int32_t position,
                        std::int32_t vocab_size) const;

  std::uint64_t seed() const { return seed_; }
  std::int32_t percent() const { return percent_; }

 private:
  std::uint64_t seed_;
  std::int32_t percent_;
};

}  // namespace capcheck::sim
