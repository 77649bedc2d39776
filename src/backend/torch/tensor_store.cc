#include "tensor_store.h"

#include <ATen/Parallel.h>

#include <mutex>

#include "capcheck/detail/model.h"

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace capcheck::torch_detail {

#if defined(TORCH_VERSION)
const char* const kTorchVersion = "LibTorch " TORCH_VERSION;
#else
const char* const kTorchVersion = "LibTorch";
#endif

namespace {

// Note [uint32 on LibTorch]: LibTorch has no uint32 tensors, so the model mix
// runs on int64 tensors holding the uint32 bit pattern (always in [0, 2^32)).
// Every multiplier is below 2^31, so a product stays below 2^63 and never
// overflows; masking with 0xFFFFFFFF afterwards is the uint32 wrap, and right
// shifts of non-negative int64 values are logical shifts.
constexpr std::int64_t kUint32Mask = 0xFFFFFFFFLL;
constexpr std::int64_t kInt32Limit = 0x80000000LL;    // 2^31
constexpr std::int64_t kUint32Modulus = 0x100000000LL;  // 2^32
static_assert(kMixMultiplier1 < kInt32Limit && kMixMultiplier2 < kInt32Limit &&
                  kMixMultiplier3 < kInt32Limit,
              "Note [uint32 on LibTorch] needs multipliers below 2^31");

// The uint32 pattern of int32 values, widened to int64.
at::Tensor to_uint32_pattern(const at::Tensor& values) {
  return values.to(at::kLong).bitwise_and(kUint32Mask);
}

// h * multiplier modulo 2^32, on uint32 patterns.
at::Tensor multiply_wrapped(const at::Tensor& h, std::uint32_t multiplier) {
  return h.mul(static_cast<std::int64_t>(multiplier)).bitwise_and(kUint32Mask);
}

// h ^ (h >> shift), on uint32 patterns.
at::Tensor xor_shift(const at::Tensor& h, std::int64_t shift) {
  return h.bitwise_xor(h.bitwise_right_shift(shift));
}

// The int32 whose two's-complement bits are the uint32 pattern `h`.
at::Tensor from_uint32_pattern(const at::Tensor& h) {
  return at::where(h.ge(kInt32Limit), h.sub(kUint32Modulus), h).to(at::kInt);
}

}  // namespace

at::Tensor model_mix_tensor(const at::Tensor& input_ids, const at::Tensor& position_ids,
                            const at::Tensor& kv_len_of_token) {
  at::Tensor h = to_uint32_pattern(input_ids);
  h = multiply_wrapped(h, kMixMultiplier1);
  h = xor_shift(h, 15);
  h = h.bitwise_xor(to_uint32_pattern(position_ids));
  h = multiply_wrapped(h, kMixMultiplier2);
  h = xor_shift(h, 13);
  h = h.bitwise_xor(to_uint32_pattern(kv_len_of_token));
  h = multiply_wrapped(h, kMixMultiplier3);
  h = xor_shift(h, 16);
  return from_uint32_pattern(h);
}

void limit_torch_threads() {
  static std::once_flag once;
  std::call_once(once, [] { at::set_num_threads(1); });
}


}  // namespace capcheck::torch_detail
