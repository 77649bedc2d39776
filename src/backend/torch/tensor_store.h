// Tensor storage of the LibTorch backend: one int32 tensor per buffer slot
// and every backend op as tensor ops on them, on the CPU or a CUDA device.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <string>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/detail/buffer_table.h"
#include "capcheck/errors.h"

namespace capcheck::torch_detail {

/// "LibTorch 1.13.0" (the version this module was built against).
extern const char* const kTorchVersion;

/// model_mix (capcheck/detail/model.h) on whole tensors, bitwise identical to it.
at::Tensor model_mix_tensor(const at::Tensor& input_ids, const at::Tensor& position_ids,
                            const at::Tensor& kv_len_of_token);

/// Tensors are tiny; intra-op threads would only add overhead. LibTorch's
/// thread count is process-wide, so it is set once.
void limit_torch_threads();

// failure of `call`. BackendError and InternalError pass through unchanged.
// The tensors never need autograd, and tensors made in inference mode may only
// be updated in place under it.
template <typename F>
void guarded(const char* call, F body, SourceLocation where = SourceLocation::current()) {
  c10::InferenceMode inference_mode;
  try {
    body();
  } catch (const c10::Error& error) {
    throw_backend_error(BackendErrorKind::kDevice, call,
                        std::string("LibTorch: ") + error.what_without_backtrace(), where);
  }
}


/// One tensor per buffer slot and every backend op as tensor ops on them, on
// whichever device `options` names. Called only with checked, live, in-bounds
// slices (detail::BufferTable).
class TensorStore {
 public:
  explicit TensorStore(at::TensorOptions options) : options_(options.dtype(at::kInt)) {}

  void allocate(std::uint32_t slot, std::int64_t count) {
    if (slot >= memory_.size()) memory_.resize(slot + 1);
    memory_[slot] = at::zeros({count}, options_);
  }
  void free(std::uint32_t slot) { memory_[slot] = at::Tensor(); }

  void upload(const Slice& dst, const std::int32_t* src) {
    // from_blob does not copy and never writes through the pointer here; a
    // copy from pageable host memory is synchronous.
    const at::Tensor host = at::from_blob(const_cast<std::int32_t*>(src), {dst.count},
                                          at::TensorOptions().dtype(at::kInt));
    segment(dst).copy_(host);
  }
  void download(const Slice& src, std::int32_t* dst) {
    at::Tensor host = at::from_blob(dst, {src.count}, at::TensorOptions().dtype(at::kInt));
    host.copy_(segment(src));
  }

  /// Runs `op` now. A model_step checks its sequence ids on the host first
  /// (a read-back on CUDA).
  void execute(const Op& op) {
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
  }

  /// Issues `op` on a capturing stream: nothing may read device memory back.
  /// Note [model_step bounds, torch]: a model_step is masked, and reports an
  /// out-of-range sequence id in `error_record` (status, token, seq, kv count).
  void execute_captured(const Op& op, at::Tensor& error_record) {
    if (op.kind != OpKind::kModelStep) {
      execute(op);
      return;
    }
    if (op.dst.count == 0) return;
    const std::int64_t count = op.dst.count;
    const std::int64_t kv_lens_count = op.kv_lens.count;
    const at::Tensor seq_ids = segment(op.seq_ids).to(at::kLong);
    const at::Tensor outside = seq_ids.lt(0).logical_or(seq_ids.ge(kv_lens_count));
    const at::Tensor any_outside = outside.any();
    const at::Tensor kv_len_of_token =
        kv_lens_count == 0
            ? at::zeros_like(seq_ids)
            : segment(op.kv_lens).index_select(0, seq_ids.clamp(0, kv_lens_count - 1));
    const at::Tensor mixed =
        model_mix_tensor(segment(op.src), segment(op.positions), kv_len_of_token);
    at::Tensor out = segment(op.dst);
    out.copy_(at::where(any_outside, out, mixed));

    const at::Tensor tokens = at::arange(count, seq_ids.options());
    const at::Tensor first_outside =
        at::where(outside, tokens, at::full_like(tokens, count)).min().clamp_max(count - 1).view({1});
    const at::Tensor record =
        at::cat({any_outside.to(at::kLong).view({1}), first_outside,
                 seq_ids.index_select(0, first_outside),
                 at::full({1}, kv_lens_count, seq_ids.options())});
    // The first error is kept until it is reported, like the sim's first throw.
    const at::Tensor keep = error_record.narrow(0, 0, 1).ne(0).logical_or(any_outside.logical_not());
    error_record.copy_(at::where(keep, error_record, record));
  }

 private:
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
      throw_backend_error(BackendErrorKind::kInvalidValue, "model_step",
                          detail::model_step_out_of_range(first_bad, seq, kv_lens_count));
    }
    const at::Tensor kv_len_of_token = segment(op.kv_lens).index_select(0, seq_ids);
    const at::Tensor mixed =
        model_mix_tensor(segment(op.src), segment(op.positions), kv_len_of_token);
    segment(op.dst).copy_(mixed);
  }

  at::Tensor segment(const Slice& slice) {
    return memory_[slice.buffer.slot].narrow(0, slice.offset, slice.count);
  }

  at::TensorOptions options_;
  std::vector<at::Tensor> memory_;
};

}  // namespace capcheck::torch_detail
