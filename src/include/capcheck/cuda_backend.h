// The raw CUDA backend: device buffers, one kernel per backend op, and real
// CUDA-graph capture (cudaStreamBeginCapture in thread-local mode,
// cudaStreamEndCapture, cudaGraphInstantiate, cudaGraphLaunch) on one
// non-blocking stream. Built where nvcc exists (CAPCHECK_ENABLE_CUDA); runs
// where a GPU exists. Its errors are the sim's: the same BackendErrorKind for
// the same misuse, so the sim and a real GPU can be compared case by case.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capcheck/backend.h"

namespace capcheck {

/// A new backend on the current CUDA device with its own non-blocking stream
/// (or the legacy default stream when `options.legacy_stream`). Throws
/// BackendError kUnavailable when no usable device is present.
std::unique_ptr<Backend> make_cuda_backend(BackendOptions options = {});

/// True when a CUDA device can be used; otherwise `why` (if given) says why,
/// e.g. "no CUDA device: cudaErrorNoDevice (100): no CUDA-capable device is detected".
bool cuda_device_available(std::string* why = nullptr);

/// "CUDA runtime 13.0, driver 13.0, NVIDIA H100 80GB HBM3 (sm_90)", or why no device is usable.
std::string cuda_backend_description();

/// Host time spent in one kind of backend call, when profiling is on.
struct CudaCallProfile {
  /// "launch", "flush (batch)", "upload", "download", "download (cached)",
  /// "begin_capture", "end_capture", "replay", "allocate", ... A flush is
  /// also counted inside the call that triggered it.
  std::string call;
  std::int64_t count = 0;
  double seconds = 0.0;
};

/// Turns per-call host timing on or off (off by default; cleared when turned
/// on). `backend` must come from make_cuda_backend.
void cuda_backend_set_profiling(Backend& backend, bool enabled);

/// Turns eager batching on (the default) or off: outside capture, queued ops
/// run as one kernel before the next stream operation instead of one launch
/// each. Results are identical either way; only the launch count differs.
void cuda_backend_set_eager_batching(Backend& backend, bool enabled);

/// The per-call timings gathered since profiling was turned on.
std::vector<CudaCallProfile> cuda_backend_profile(const Backend& backend);

}  // namespace capcheck
