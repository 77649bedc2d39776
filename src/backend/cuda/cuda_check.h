// The CUDA error tier (docs/architecture.md): every CUDA runtime call goes through
// CAPCHECK_CUDA_CHECK, which throws BackendError naming the call, the file and
// the line; destructors and reset paths use CAPCHECK_CUDA_WARN, which reports
// and never throws. CUDA's error codes map onto the same BackendErrorKind the
// sim reports, so a capture error reads the same on every backend.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "capcheck/errors.h"

namespace capcheck::cuda_detail {

// The capture kinds carry CUDA's own numbers (errors.h); keep them in step.
static_assert(static_cast<int>(BackendErrorKind::kInvalidValue) == cudaErrorInvalidValue,
              "kInvalidValue must be cudaErrorInvalidValue");
static_assert(static_cast<int>(BackendErrorKind::kIllegalState) == cudaErrorIllegalState,
              "kIllegalState must be cudaErrorIllegalState");
static_assert(static_cast<int>(BackendErrorKind::kCaptureUnsupported) ==
                  cudaErrorStreamCaptureUnsupported,
              "kCaptureUnsupported must be cudaErrorStreamCaptureUnsupported");
static_assert(static_cast<int>(BackendErrorKind::kCaptureInvalidated) ==
                  cudaErrorStreamCaptureInvalidated,
              "kCaptureInvalidated must be cudaErrorStreamCaptureInvalidated");

/// The BackendErrorKind a CUDA error is reported as.
inline BackendErrorKind error_kind(cudaError_t error) {
  switch (error) {
    case cudaErrorStreamCaptureUnsupported: return BackendErrorKind::kCaptureUnsupported;
    case cudaErrorStreamCaptureInvalidated: return BackendErrorKind::kCaptureInvalidated;
    case cudaErrorIllegalState: return BackendErrorKind::kIllegalState;
    case cudaErrorInvalidValue: return BackendErrorKind::kInvalidValue;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
      return BackendErrorKind::kUnavailable;
    default: return BackendErrorKind::kDevice;
  }
}

/// "cudaErrorStreamCaptureUnsupported (900): operation not permitted when stream is capturing".
inline std::string error_text(cudaError_t error) {
  return std::string(cudaGetErrorName(error)) + " (" + std::to_string(static_cast<int>(error)) +
         "): " + cudaGetErrorString(error);
}

/// Throws BackendError for a failed call. `call` is the call's source text.
[[noreturn]] inline void throw_error(cudaError_t error, const char* call, const char* file,
                                     int line) {
  // Clear the runtime's last-error slot so the next launch check does not
  // report this failure a second time (sticky errors stay regardless).
  (void)cudaGetLastError();
  throw BackendError(error_kind(error), call,
                     error_text(error) + " at " + file + ":" + std::to_string(line), file, line);
}

inline void check(cudaError_t error, const char* call, const char* file, int line) {
  if (error != cudaSuccess) throw_error(error, call, file, line);
}

/// Reports a failed call on stderr; for destructors and reset paths.
inline void warn(cudaError_t error, const char* call, const char* file, int line) noexcept {
  if (error == cudaSuccess) return;
  (void)cudaGetLastError();
  std::fprintf(stderr, "capcheck: warning: %s failed: %s (%d): %s at %s:%d\n", call,
               cudaGetErrorName(error), static_cast<int>(error), cudaGetErrorString(error), file,
               line);
}

}  // namespace capcheck::cuda_detail

/// Runs a CUDA runtime call; throws BackendError (call text, file, line) on failure.
#define CAPCHECK_CUDA_CHECK(call) \
  ::capcheck::cuda_detail::check((call), #call, __FILE__, __LINE__)

/// Runs a CUDA runtime call; reports a failure on stderr and never throws.
#define CAPCHECK_CUDA_WARN(call) \
  ::capcheck::cuda_detail::warn((call), #call, __FILE__, __LINE__)

/// Checks the launch of the kernel just issued (configuration and launch errors).
#define CAPCHECK_CUDA_CHECK_LAUNCH(kernel_name) \
  ::capcheck::cuda_detail::check(cudaGetLastError(), kernel_name "<<<...>>>", __FILE__, __LINE__)
