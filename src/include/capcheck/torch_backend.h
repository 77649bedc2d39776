// The LibTorch backend: every backend op is a real tensor op. On CPU (Debian's
// LibTorch 1.13) capture follows the recorded-capture model shared with `sim`.
#pragma once

#include <memory>

#include "capcheck/backend.h"

namespace capcheck {

/// A LibTorch backend on the CPU.
std::unique_ptr<Backend> make_torch_backend(BackendOptions options = {});

/// "LibTorch <version> (CPU)".
const char* torch_backend_description();

}  // namespace capcheck
