// The graph facade for LibTorch capture code, and the emulator behind it on a
// CPU (docs/torch-subjects.md). `capcheck::torch_graph::CUDAGraph` has the
// shape of `at::cuda::CUDAGraph` (capture_begin(pool), capture_end(),
// replay(), reset(), pool()), with graph_pool_handle(), a capture stream, a
// stream guard and synchronize(), so capture code written against CUDA runs
// unchanged on CPU tensors once its graph type is this one.
//
// While an emulated capture is open, on the thread that opened it, every
// dispatcher op reaches a boxed fallback (Note [the capture emulator]):
//   - ops are recorded with their arguments, not executed on the captured
//     tensors: a capture leaves every tensor that existed before it unchanged;
//   - outputs of recorded ops are new tensors, poisoned (NaN for floating
//     types, 0xA5 bytes otherwise) until a replay computes them;
//   - view and metadata-only ops run eagerly and keep aliasing;
//   - replay re-runs the recorded ops in order on the captured storages
//     (in-place updates accumulate across replays); outputs keep their
//     addresses;
//   - host values passed at capture (scalars, ints) are baked;
//   - a host read during capture (`item()`, an op with a host result, an op
//     whose output shape depends on data such as `nonzero`) invalidates the
//     capture with kind 900 (capture-unsupported); capture_end() then fails
//     with 901 (capture-invalidated) and leaves no graph, as CUDA does;
//   - ops the emulator does not model (random number generation) fail with a
//     named error;
//   - a captured tensor's storage that its owner freed or resized after
//     capture is reported as dangling (kind dangling-buffer) at replay.
// Errors are capcheck::BackendError with those kinds.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include <torch/torch.h>

namespace capcheck::torch_graph {

/// A memory pool id, as `at::cuda::MempoolId_t`.
using MempoolId_t = std::pair<std::uint64_t, std::uint64_t>;

/// A new pool id for graphs that should share one pool.
MempoolId_t graph_pool_handle();

/// True while the calling thread has an emulated capture open.
bool is_current_stream_capturing();

/// Waits for the device: a no-op on the CPU, and a host synchronization, so it
/// invalidates an open capture (900) as on CUDA.
void synchronize();

/// The capture stream and its guard: CPU work is ordered already, so both only
/// keep the shape of the CUDA code.
struct CaptureStream {};
inline CaptureStream getStreamFromPool() { return {}; }
class StreamGuard {
 public:
  explicit StreamGuard(const CaptureStream&) {}
};

class CUDAGraph {
 public:
  CUDAGraph();
  ~CUDAGraph();
  CUDAGraph(const CUDAGraph&) = delete;
  CUDAGraph& operator=(const CUDAGraph&) = delete;

  /// Opens a capture on this thread; `pool` {0, 0} means a private pool.
  void capture_begin(MempoolId_t pool = {0, 0});
  /// Closes it; throws 901 (and keeps no graph) when the capture was invalidated.
  void capture_end();
  /// Re-runs the recorded ops; throws when nothing was captured, or when a
  /// captured storage is dangling.
  void replay();
  /// Drops the recorded ops and the outputs' ownership.
  void reset();
  MempoolId_t pool() const;

  /// Recorded ops, in order ("aten::add_", ...), for tests and reports.
  std::vector<std::string> recorded_ops() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace capcheck::torch_graph
