// Pieces of the LibTorch backend shared by its translation units.
#pragma once

#include <memory>
#include <string>

#include "capcheck/backend.h"

namespace capcheck::torch_detail {

/// The CPU placement (backend/torch/torch_cpu_backend.cc).
std::unique_ptr<Backend> make_torch_cpu_backend(BackendOptions options);

#if defined(CAPCHECK_TORCH_CUDA)
/// The CUDA placement (backend/torch/torch_cuda_backend.cc).
std::unique_ptr<Backend> make_torch_cuda_backend(BackendOptions options);
/// True when LibTorch sees a CUDA device; otherwise `why` says why not.
bool torch_cuda_probe(std::string* why);
/// The current device's name.
std::string torch_cuda_device_name();
#endif

}  // namespace capcheck::torch_detail
