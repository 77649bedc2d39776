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
//     capture is reported as dangling (kind dangling-buffer) at replay;
//   - graphs captured into one shared pool reuse each other's blocks that
//     nothing but graphs refers to any more (intermediates, and outputs whose
//     owner kept no owning tensor), as the CUDA caching allocator does, so a
//     replay of one graph can overwrite what another returned.
// Errors are capcheck::BackendError with those kinds.
//
// On a CUDA device (a LibTorch built with CUDA, and a GPU) the same facade is
// at::cuda::CUDAGraph, its pools and streams: GraphDevice says which one a
// graph uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "capcheck/errors.h"

namespace capcheck::torch_graph {

/// A memory pool id, as `at::cuda::MempoolId_t`.
using MempoolId_t = std::pair<unsigned long long, unsigned long long>;

/// Which graphs the facade makes: the emulator (CPU tensors), real CUDA graphs
/// (CUDA tensors), or kAuto: CUDA when this LibTorch has CUDA and a GPU is
/// present, else the emulator. CAPCHECK_GRAPH_DEVICE=emulator|cuda overrides
/// kAuto for the whole process.
enum class GraphDevice : std::uint8_t { kAuto, kEmulator, kCuda };
/// kAuto resolved: kEmulator or kCuda.
GraphDevice default_graph_device();
/// True when kCuda can run here (LibTorch with CUDA, and a GPU); `why` says
/// why not.
bool cuda_graphs_available(std::string* why = nullptr);

/// A new pool id for graphs that should share one pool.
MempoolId_t graph_pool_handle(GraphDevice device = GraphDevice::kAuto);

/// True while the calling thread has an emulated capture open, or the
/// current CUDA stream is capturing.
bool is_current_stream_capturing();

/// Waits for the device: a host synchronization, so it invalidates an open
/// capture (900) as on CUDA. A no-op on the CPU otherwise.
void synchronize();

/// The capture stream and its guard. On the CPU work is ordered already and
/// both only keep the shape of the CUDA code; on CUDA the stream is one from
/// the pool, and the guard makes it current, ordered after the work before it
/// (on entry) and before the work after it (on exit), as torch.cuda.graph does.
struct CaptureStream {
  c10::Stream stream{c10::Stream::DEFAULT, c10::Device(c10::kCPU)};
};
CaptureStream getStreamFromPool(GraphDevice device = GraphDevice::kAuto);
class StreamGuard {
 public:
  explicit StreamGuard(const CaptureStream& stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  c10::Stream previous_{c10::Stream::DEFAULT, c10::Device(c10::kCPU)};
  c10::Stream current_{c10::Stream::DEFAULT, c10::Device(c10::kCPU)};
};

/// The capture-error kind of an exception from capture code: the
/// BackendError's own kind, or, for a c10::Error raised by CUDA during a real
/// capture, the kind its CUDA error maps to (900 capture-unsupported, 901
/// capture-invalidated); kDevice for anything else. The same illegal call
/// gives the same kind on the emulator and on CUDA.
BackendErrorKind capture_error_kind(const std::exception& error);

/// Which op last wrote which device bytes, recorded on the thread that
/// started it: eager ops (through the dispatcher) and the recorded ops an
/// emulated replay re-runs. What a real CUDA replay does inside the graph is
/// not visible. For explanations: "last written by aten::sub_ during capture".
class WriteTrace {
 public:
  struct Write {
    std::string op;     // "aten::sub_"
    std::string phase;  // set_phase() at the time, plus the graph op for replays
    std::uintptr_t begin = 0, end = 0;  // the written bytes' addresses
  };
  WriteTrace() = default;
  ~WriteTrace();
  WriteTrace(const WriteTrace&) = delete;
  WriteTrace& operator=(const WriteTrace&) = delete;

  /// Clears the trace and records on this thread until stop().
  void start();
  void stop();
  bool active() const { return active_; }
  /// Labels the writes that follow ("capture", "replay").
  void set_phase(std::string phase) { phase_ = std::move(phase); }
  const std::string& phase() const { return phase_; }
  /// The last write that covered the byte at `address`, if any.
  std::optional<Write> last_write(const void* address) const;

  /// What the emulator records per write (formatted only by last_write()).
  struct Record {
    const std::string* op;  // the operator's name, alive for the process
    std::uint32_t phase;
    int graph_op, graph_ops;  // k of n for a replayed graph op, else 0
    std::uintptr_t begin, end;
  };
  void record(const Record& r) { records_.push_back(r); }
  std::uint32_t phase_index();

 private:
  bool active_ = false;
  bool was_included_ = false;
  std::string phase_;
  std::vector<std::string> phases_;
  std::vector<Record> records_;
};

/// Labels what the active WriteTrace of this thread records next ("warmup
/// postprocess"); a no-op when none is active. For subjects' explanations.
void annotate(std::string phase);

class CUDAGraph {
 public:
  explicit CUDAGraph(GraphDevice device = GraphDevice::kAuto);
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

  /// Recorded ops, in order ("aten::add_", ...), for tests and reports
  /// (empty for a real CUDA graph).
  std::vector<std::string> recorded_ops() const;
  /// kEmulator or kCuda.
  GraphDevice device() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace capcheck::torch_graph
