// The LibTorch backend on the CPU (any LibTorch, Debian's 1.13 included):
// capture follows the capture model shared with `sim`
// (detail::RecordingBackend, Note [one capture model]).
#include "capcheck/detail/recording_backend.h"
#include "tensor_store.h"
#include "torch_detail.h"

namespace capcheck::torch_detail {

namespace {

class TorchCpuBackend final : public detail::RecordingBackend {
 public:
  explicit TorchCpuBackend(BackendOptions options)
      : RecordingBackend(options), store_(at::TensorOptions().device(at::kCPU)) {
    limit_torch_threads();
  }
  std::string_view name() const override { return "torch"; }

 protected:
  void storage_allocate(std::uint32_t slot, std::int64_t count) override {
    guarded("allocate", [&] { store_.allocate(slot, count); });
  }
  void storage_free(std::uint32_t slot) override {
    guarded("free", [&] { store_.free(slot); });
  }
  void storage_upload(const Slice& dst, const std::int32_t* src) override {
    guarded("upload", [&] { store_.upload(dst, src); });
  }
  void storage_download(const Slice& src, std::int32_t* dst) override {
    guarded("download", [&] { store_.download(src, dst); });
  }
  void execute(const Op& op) override {
    guarded(op_kind_name(op.kind), [&] { store_.execute(op); });
  }

 private:
  TensorStore store_;
};

}  // namespace

std::unique_ptr<Backend> make_torch_cpu_backend(BackendOptions options) {
  return std::make_unique<TorchCpuBackend>(options);
}

}  // namespace capcheck::torch_detail
