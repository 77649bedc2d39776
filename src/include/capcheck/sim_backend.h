// The simulated GPU: host memory on Eigen arrays plus the recorded-capture
// model of CUDA stream capture. Always built; the default backend.
#pragma once

#include <memory>

#include "capcheck/backend.h"

namespace capcheck {

/// A new simulated device with one non-blocking stream (or the legacy stream).
std::unique_ptr<Backend> make_sim_backend(BackendOptions options = {});

}  // namespace capcheck
