// The LibTorch backend: every backend op is a real tensor op. On CUDA (a
// LibTorch built with CUDA, such as the PyTorch wheel's, and a visible device)
// the tensors live on the GPU and a capture is a real at::cuda::CUDAGraph; on
// the CPU (Debian's LibTorch 1.13) capture follows the recorded-capture model
// shared with `sim`. Both answer every call with the sim's error kinds.
#pragma once

#include <memory>
#include <string>

#include "capcheck/backend.h"

/// Exported from the torch module (built with hidden visibility).
#define CAPCHECK_TORCH_API __attribute__((visibility("default")))

namespace capcheck {

/// Where the tensors of a torch backend live.
enum class TorchDevice {
  /// CUDA when LibTorch has CUDA and a device is present, else the CPU.
  kAuto,
  /// The CPU, with the recorded-capture model of `sim`.
  kCpu,
  /// The current CUDA device, with real CUDA graphs.
  kCuda,
};

/// A LibTorch backend on `device`. With kCuda, throws BackendError
/// kUnavailable when torch_cuda_available() is false.
CAPCHECK_TORCH_API std::unique_ptr<Backend> make_torch_backend(BackendOptions options = {},
                                            TorchDevice device = TorchDevice::kAuto);

/// True when this LibTorch has CUDA and sees a device; otherwise `why` (if
/// given) says why, starting "no CUDA device: ".
CAPCHECK_TORCH_API bool torch_cuda_available(std::string* why = nullptr);

/// "LibTorch <version> (CUDA, <device name>)" or "LibTorch <version> (CPU)":
/// where make_torch_backend() puts its tensors.
CAPCHECK_TORCH_API const char* torch_backend_description();

}  // namespace capcheck
