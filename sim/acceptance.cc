#include "capcheck/sim/acceptance.h"

#include "capcheck/errors.h"

namespace capcheck::sim {

namespace {
// Domain separators, so that acceptance draws and token ids never share a stream.
constexpr std::uint64_t kAcceptanceDomain = 0x6163636570746564ull;  // "accepted"
constexpr std::uint64_t kTokenDomain = 0x746f6b656e696473ull;       // "tokenids"

std::uint64_t mix3(std::uint64_t seed, std::uint64_t a, std::uint64_t b) {
  return splitmix64(splitmix64(splitmix64(seed) ^ a) ^ b);
}
}  // namespace

AcceptanceModel::AcceptanceModel(std::uint64_t seed, std::int32_t percent)
    : seed_(seed), percent_(percent) {
  CAPCHECK_ASSERT(percent >= 0);
  CAPCHECK_ASSERT(percent <= 100);
}

std::int32_t AcceptanceModel::accepted(std::int64_t request_id, std::int64_t iteration,
                                       std::int32_t draft_len) const {
  CAPCHECK_ASSERT(draft_len >= 0);
  const std::uint64_t stream = mix3(seed_ ^ kAcceptanceDomain, static_cast<std::uint64_t>(request_id),
                                    static_cast<std::uint64_t>(iteration));
  std::int32_t count = 0;
  while (count < draft_len) {
    const std::uint64_t draw = splitmix64(stream + static_cast<std::uint64_t>(count)) % 100u;
    if (draw >= static_cast<std::uint64_t>(percent_)) break;
    ++count;
  }
  return count;
}

std::int32_t AcceptanceModel::token_id(std::int64_t request_id, std::int32_t position,
                                       std::int32_t vocab_size) const {
  CAPCHECK_ASSERT(vocab_size >= 1);
  const std::uint64_t h = mix3(seed_ ^ kTokenDomain, static_cast<std::uint64_t>(request_id),
                               static_cast<std::uint64_t>(static_cast<std::uint32_t>(position)));
  return static_cast<std::int32_t>(h % static_cast<std::uint64_t>(vocab_size));
}

}  // namespace capcheck::sim
