// The LibTorch backend (docs/architecture.md). Every backend op is a tensor op
// on int32 tensors, one tensor per buffer, allocated once. Two placements:
//
// - CPU (torch_cpu_backend.cc; any LibTorch, Debian's 1.13 included): capture
//   follows the capture model shared with `sim` (detail::RecordingBackend).
// - CUDA (torch_cuda_backend.cc; CAPCHECK_TORCH_CUDA, set by CMake only for a
//   LibTorch built with CUDA, and a device at run time): a capture is a real
//   at::cuda::CUDAGraph.
//
// This file holds the public functions and the module's entry point
// (capcheck/detail/torch_module.h).
#include "capcheck/torch_backend.h"

#include <string>

#include "capcheck/detail/torch_module.h"
#include "capcheck/errors.h"
#include "tensor_store.h"
#include "torch_detail.h"



namespace capcheck {

using torch_detail::kTorchVersion;

bool torch_cuda_available(std::string* why) {
#if defined(CAPCHECK_TORCH_CUDA)
  return torch_detail::torch_cuda_probe(why);
#else
  if (why != nullptr) {
    *why = std::string("no CUDA device: ") + kTorchVersion + " was built without CUDA";
  }
  return false;
#endif
}

std::unique_ptr<Backend> make_torch_backend(BackendOptions options, TorchDevice device) {
  if (device == TorchDevice::kAuto) {
    device = torch_cuda_available() ? TorchDevice::kCuda : TorchDevice::kCpu;
  }
  if (device == TorchDevice::kCpu) return torch_detail::make_torch_cpu_backend(options);
  std::string why;
  if (!torch_cuda_available(&why)) {
    throw_backend_error(BackendErrorKind::kUnavailable, "make_torch_backend", why);
  }
#if defined(CAPCHECK_TORCH_CUDA)
  return torch_detail::make_torch_cuda_backend(options);
#else
  CAPCHECK_ASSERT(false && "torch_cuda_available() is false without CAPCHECK_TORCH_CUDA");
  return nullptr;
#endif
}

const char* torch_backend_description() {
  static const std::string description = []() -> std::string {
#if defined(CAPCHECK_TORCH_CUDA)
    if (torch_cuda_available()) {
      return std::string(kTorchVersion) + " (CUDA, " + torch_detail::torch_cuda_device_name() +
             ")";
    }
#endif
    return std::string(kTorchVersion) + " (CPU)";
  }();
  return description.c_str();
}

}  // namespace capcheck

extern "C" CAPCHECK_TORCH_API const capcheck::detail::TorchModule* capcheck_torch_module() {
  static const capcheck::detail::TorchModule module = [] {
    capcheck::detail::TorchModule m;
    m.make = &capcheck::make_torch_backend;
    m.cuda_available = &capcheck::torch_cuda_available;
    m.description = &capcheck::torch_backend_description;
    return m;
  }();
  return &module;
}
