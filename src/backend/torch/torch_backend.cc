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
// (capcheck/detail/torch_module.h), which also builds the built-in LibTorch
// subjects (capcheck/torch_subject.h) for the CLI.
#include "capcheck/torch_backend.h"

#include <string>

#include "capcheck/detail/torch_module.h"
#include "capcheck/errors.h"
#include "capcheck/torch_subject.h"
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

std::unique_ptr<Subjects> make_builtin_torch_subjects(const std::string& subject,
                                                      const std::string& device) {
  TrtllmTorchOptions options;
  if (subject == "trtllm-torch-mrope") {
    options.mrope = true;
  } else if (subject != "trtllm-torch") {
    throw UsageError("unknown LibTorch subject " + quote_input(subject) +
                     "; known: trtllm-torch, trtllm-torch-mrope");
  }
  torch::Device on = torch::kCPU;
  if (device == "cuda") {
    std::string why;
    if (!torch_graph::cuda_graphs_available(&why)) {
      throw_backend_error(BackendErrorKind::kUnavailable, "make_subjects", "backend 'cuda' for " + subject + ": " + why);
    }
    on = torch::kCUDA;
  } else if (device != "emulator") {
    throw UsageError("subject " + subject + " runs on backend emulator (CPU tensors, the capture "
                     "emulator) or cuda (at::cuda::CUDAGraph), not " + quote_input(device));
  }
  return make_torch_subjects(
      [options](const TorchSubjectOptions& o) { return make_trtllm_torch_subject(o, options); }, on);
}

}  // namespace capcheck

extern "C" CAPCHECK_TORCH_API const capcheck::detail::TorchModule* capcheck_torch_module() {
  static const capcheck::detail::TorchModule module = [] {
    capcheck::detail::TorchModule m;
    m.make = &capcheck::make_torch_backend;
    m.cuda_available = &capcheck::torch_cuda_available;
    m.description = &capcheck::torch_backend_description;
    m.make_subjects = &capcheck::make_builtin_torch_subjects;
    return m;
  }();
  return &module;
}
