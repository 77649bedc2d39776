// Note [the facade on CUDA]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// With GraphDevice::kCuda, capcheck::torch_graph::CUDAGraph is a thin front
// of at::cuda::CUDAGraph: capture_begin(pool) / capture_end() / replay() /
// reset() forward to it, graph_pool_handle() is at::cuda::graph_pool_handle(),
// the capture stream is one from LibTorch's pool and StreamGuard orders it
// with the current stream both ways (as torch.cuda.graph does). CUDA's own
// errors during a capture (c10::Error) come out of the facade's calls as
// BackendError with the kinds the emulator uses (capture_error_kind()); an op
// of the user's code that CUDA refuses during a capture throws c10::Error
// from that op, which capture_error_kind() classifies the same way.
#include "cuda_graph.h"

#if defined(CAPCHECK_TORCH_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/cuda.h>
#endif

namespace capcheck::torch_graph {

#if defined(CAPCHECK_TORCH_CUDA)

namespace {

bool device_present() {
  static const bool present = torch::cuda::is_available();
  return present;
}

template <typename F>
auto as_backend_error(const char* call, F&& f) {
  try {
    return f();
  } catch (const c10::Error& error) {
    throw_backend_error(capture_error_kind(error), call, error.what_without_backtrace());
  }
}

class CudaGraph final : public RealGraph {
 public:
  void capture_begin(MempoolId_t pool) override {
    as_backend_error("capture_begin", [&] {
      // Thread-local mode: another thread's CUDA calls do not invalidate it.
      graph_.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
    });
  }
  void capture_end() override { as_backend_error("capture_end", [&] { graph_.capture_end(); }); }
  void replay() override { as_backend_error("replay", [&] { graph_.replay(); }); }
  void reset() override { as_backend_error("reset", [&] { graph_.reset(); }); }

 private:
  at::cuda::CUDAGraph graph_;
};

}  // namespace

bool cuda_graphs_available(std::string* why) {
  if (device_present()) return true;
  if (why) *why = "LibTorch has CUDA but no GPU is visible";
  return false;
}

std::unique_ptr<RealGraph> make_real_graph() { return std::make_unique<CudaGraph>(); }

MempoolId_t real_graph_pool_handle() { return at::cuda::graph_pool_handle(); }

bool real_capture_active() {
  if (!device_present()) return false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(c10::cuda::getCurrentCUDAStream().stream(), &status) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return status != cudaStreamCaptureStatusNone;
}

void real_synchronize() {
  if (!device_present()) return;
  // During a capture CUDA refuses it (900) and invalidates the capture, so
  // that capture_end() then fails (901), as the emulator models it.
  as_backend_error("synchronize", [] { c10::cuda::device_synchronize(); });
}

c10::Stream real_stream_from_pool() {
  return c10::cuda::getStreamFromPool(/*isHighPriority=*/false).unwrap();
}

c10::Stream enter_real_stream(const c10::Stream& capture) {
  const c10::cuda::CUDAStream previous = c10::cuda::getCurrentCUDAStream(capture.device_index());
  const c10::cuda::CUDAStream next(c10::cuda::CUDAStream::UNCHECKED, capture);
  at::cuda::CUDAEvent ready;
  ready.record(previous);
  ready.block(next);
  c10::cuda::setCurrentCUDAStream(next);
  return previous.unwrap();
}

void exit_real_stream(const c10::Stream& previous, const c10::Stream& capture) {
  const c10::cuda::CUDAStream prev(c10::cuda::CUDAStream::UNCHECKED, previous);
  const c10::cuda::CUDAStream cap(c10::cuda::CUDAStream::UNCHECKED, capture);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  (void)cudaStreamIsCapturing(cap.stream(), &status);
  if (status != cudaStreamCaptureStatusNone) {
    // Left by an exception out of an open capture: end it and drop what it
    // recorded, or every later CUDA call of this thread would be refused.
    cudaGraph_t abandoned = nullptr;
    (void)cudaStreamEndCapture(cap.stream(), &abandoned);
    if (abandoned) (void)cudaGraphDestroy(abandoned);
    (void)cudaGetLastError();
  } else {
    at::cuda::CUDAEvent done;
    done.record(cap);
    done.block(prev);
  }
  c10::cuda::setCurrentCUDAStream(prev);
}

#else  // no CUDA in this LibTorch

namespace {
[[noreturn]] void unavailable(const char* call) {
  throw_backend_error(BackendErrorKind::kUnavailable, call,
                      "CUDA graphs: this LibTorch was built without CUDA");
}
}  // namespace

bool cuda_graphs_available(std::string* why) {
  if (why) *why = "this LibTorch was built without CUDA";
  return false;
}
std::unique_ptr<RealGraph> make_real_graph() { unavailable("CUDAGraph"); }
MempoolId_t real_graph_pool_handle() { unavailable("graph_pool_handle"); }
bool real_capture_active() { return false; }
void real_synchronize() {}
c10::Stream real_stream_from_pool() { unavailable("getStreamFromPool"); }
c10::Stream enter_real_stream(const c10::Stream&) { unavailable("StreamGuard"); }
void exit_real_stream(const c10::Stream&, const c10::Stream&) {}

#endif

}  // namespace capcheck::torch_graph
