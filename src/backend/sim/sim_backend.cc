#include "capcheck/sim_backend.h"

#include <Eigen/Core>
#include <vector>

#include "capcheck/errors.h"
#include "capcheck/detail/model.h"
#include "capcheck/detail/buffer_table.h"
#include "capcheck/detail/recording_backend.h"

namespace capcheck {

namespace {

using Storage = Eigen::Array<std::int32_t, Eigen::Dynamic, 1>;

class SimBackend final : public detail::RecordingBackend {
 public:
  using RecordingBackend::RecordingBackend;
  std::string_view name() const override { return "sim"; }

 protected:
  void storage_allocate(std::uint32_t slot, std::int64_t count) override {
    if (slot >= memory_.size()) memory_.resize(slot + 1);
    memory_[slot] = Storage::Zero(count);
  }
  void storage_free(std::uint32_t slot) override { memory_[slot].resize(0); }
  void storage_upload(const Slice& dst, const std::int32_t* src) override {
    segment(dst) = Eigen::Map<const Storage>(src, dst.count);
  }
  void storage_download(const Slice& src, std::int32_t* dst) override {
    Eigen::Map<Storage>(dst, src.count) = segment(src);
  }

  void execute(const Op& op) override {
    switch (op.kind) {
      case OpKind::kAdd:
        // Wrapping arithmetic, as on the GPU: int32 overflow is not UB there.
        apply(op, [](std::int32_t a, std::int32_t b) { return wrap(std::uint32_t(a) + std::uint32_t(b)); });
        return;
      case OpKind::kSub:
        apply(op, [](std::int32_t a, std::int32_t b) { return wrap(std::uint32_t(a) - std::uint32_t(b)); });
        return;
      case OpKind::kCopy:
        segment(op.dst) = Storage(segment(op.src));  // a temporary: source and destination may overlap
        return;
      case OpKind::kFill:
        segment(op.dst).setConstant(op.value);
        return;
      case OpKind::kModelStep:
        model_step(op);
        return;
    }
    CAPCHECK_ASSERT(false && "unknown op kind");
  }

 private:
  static std::int32_t wrap(std::uint32_t value) { return static_cast<std::int32_t>(value); }

  template <typename F>
  void apply(const Op& op, F f) {
    auto dst = segment(op.dst);
    const Storage src = segment(op.src);
    dst = dst.binaryExpr(src, f);
  }

  void model_step(const Op& op) {
    auto out = segment(op.dst);
    const Storage ids = segment(op.src);
    const Storage positions = segment(op.positions);
    const Storage seq_ids = segment(op.seq_ids);
    const auto kv = segment(op.kv_lens);
    for (Eigen::Index t = 0; t < seq_ids.size(); ++t) {
      if (seq_ids[t] < 0 || seq_ids[t] >= kv.size()) {
        // The GPU would read out of bounds (an illegal address); report it and
        // write nothing.
        throw_backend_error(BackendErrorKind::kInvalidValue, "model_step",
                            detail::model_step_out_of_range(t, seq_ids[t], kv.size()));
      }
    }
    for (Eigen::Index t = 0; t < out.size(); ++t) out[t] = model_mix(ids[t], positions[t], kv[seq_ids[t]]);
  }

  Eigen::Ref<Storage> segment(const Slice& slice) {
    return memory_[slice.buffer.slot].segment(slice.offset, slice.count);
  }

  std::vector<Storage> memory_;
};

}  // namespace

std::unique_ptr<Backend> make_sim_backend(BackendOptions options) {
  return std::make_unique<SimBackend>(options);
}

}  // namespace capcheck
