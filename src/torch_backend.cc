#include "capcheck/torch_backend.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <mutex>
#include <string>
#include <vector>

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

#include "capcheck/errors.h"
#include "capcheck/model.h"
#include "detail/recording_backend.h"

namespace capcheck {

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

// model_mix (capcheck/model.h) on whole tensors, bitwise identical to it.
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

bool overlaps(const Slice& a, const Slice& b) {
  return a.buffer.slot == b.buffer.slot && a.offset < b.offset + b.count &&
         b.offset < a.offset + a.count;
}

// Tensors are tiny; intra-op threads would only add overhead. LibTorch's
// thread count is process-wide, so it is set once.
void limit_torch_threads() {
  static std::once_flag once;
  std::call_once(once, [] { at::set_num_threads(1); });
}

class TorchBackend final : public detail::RecordingBackend {
 public:
  explicit TorchBackend(BackendOptions options) : RecordingBackend(options) {
    limit_torch_threads();
  }
  std::string_view name() const override { return "torch"; }

 protected:
  // Every primitive runs under InferenceMode: the tensors never need autograd,
  // and tensors made in inference mode may only be updated in place under it.
  void storage_allocate(std::uint32_t slot, std::int64_t count) override {
    guarded("allocate", [&] {
      if (slot >= memory_.size()) memory_.resize(slot + 1);
      memory_[slot] = at::zeros({count}, at::TensorOptions().dtype(at::kInt));
    });
  }
  void storage_free(std::uint32_t slot) override {
    guarded("free", [&] { memory_[slot] = at::Tensor(); });
  }
  void storage_upload(const Slice& dst, const std::int32_t* src) override {
    guarded("upload", [&] {
      // from_blob does not copy and never writes through the pointer here.
      const at::Tensor host = at::from_blob(const_cast<std::int32_t*>(src), {dst.count},
                                            at::TensorOptions().dtype(at::kInt));
      segment(dst).copy_(host);
    });
  }
  void storage_download(const Slice& src, std::int32_t* dst) override {
    guarded("download", [&] {
      at::Tensor host = at::from_blob(dst, {src.count}, at::TensorOptions().dtype(at::kInt));
      host.copy_(segment(src));
    });
  }

  void execute(const Op& op) override {
    guarded(op_kind_name(op.kind), [&] {
      switch (op.kind) {
        case OpKind::kAdd:
          // Wrapping arithmetic, as on the GPU and in the sim.
          segment(op.dst).add_(source(op));
          return;
        case OpKind::kSub:
          segment(op.dst).sub_(source(op));
          return;
        case OpKind::kCopy:
          segment(op.dst).copy_(source(op));
          return;
        case OpKind::kFill:
          segment(op.dst).fill_(op.value);
          return;
        case OpKind::kModelStep:
          model_step(op);
          return;
      }
      CAPCHECK_ASSERT(false && "unknown op kind");
    });
  }

 private:
  // Runs `body` under InferenceMode, reporting a LibTorch failure as a backend
  // failure of `call`. BackendError and InternalError pass through unchanged.
  template <typename F>
  void guarded(const char* call, F body) {
    c10::InferenceMode inference_mode;
    try {
      body();
    } catch (const c10::Error& error) {
      throw BackendError(BackendErrorKind::kDevice, call,
                         std::string("LibTorch: ") + error.what_without_backtrace(), __FILE__,
                         __LINE__);
    }
  }

  // The source of add/sub/copy. An overlapping source is cloned first, so the
  // op reads the values from before it writes, exactly like the sim (LibTorch
  // also rejects partially overlapping in-place operands).
  at::Tensor source(const Op& op) {
    at::Tensor src = segment(op.src);
    return overlaps(op.src, op.dst) ? src.clone() : src;
  }

  void model_step(const Op& op) {
    const at::Tensor seq_ids = segment(op.seq_ids).to(at::kLong);
    const std::int64_t kv_lens_count = op.kv_lens.count;
    const at::Tensor outside = seq_ids.lt(0).logical_or(seq_ids.ge(kv_lens_count));
    if (outside.any().item<bool>()) {
      const std::int64_t first_bad = outside.nonzero().select(1, 0)[0].item<std::int64_t>();
      const std::int64_t seq = seq_ids[first_bad].item<std::int64_t>();
      // The GPU would read out of bounds (an illegal address); report it and
      // write nothing, as the sim does.
      throw BackendError(BackendErrorKind::kInvalidValue, "model_step",
                         "seq_ids[" + std::to_string(first_bad) + "] = " + std::to_string(seq) +
                             " is outside kv_lens of " + std::to_string(kv_lens_count),
                         __FILE__, __LINE__);
    }
    const at::Tensor kv_len_of_token = segment(op.kv_lens).index_select(0, seq_ids);
    const at::Tensor mixed =
        model_mix_tensor(segment(op.src), segment(op.positions), kv_len_of_token);
    segment(op.dst).copy_(mixed);
  }

  at::Tensor segment(const Slice& slice) {
    return memory_[slice.buffer.slot].narrow(0, slice.offset, slice.count);
  }

  std::vector<at::Tensor> memory_;
};

}  // namespace

std::unique_ptr<Backend> make_torch_backend(BackendOptions options) {
  return std::make_unique<TorchBackend>(options);
}

const char* torch_backend_description() {
#if defined(TORCH_VERSION)
  return "LibTorch " TORCH_VERSION " (CPU)";
#else
  return "LibTorch (CPU)";
#endif
}

}  // namespace capcheck
