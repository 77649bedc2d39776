// The LibTorch backend on a CUDA device: tensors on the device, every op
// issued on a side stream from LibTorch's pool, and a capture is a real
// at::cuda::CUDAGraph sharing one memory pool across graphs. Compiled only
// against a LibTorch built with CUDA (CAPCHECK_TORCH_CUDA).
//
// Note [capture state on the host, torch]: as the cuda backend does (Note
// [capture state on the host] in backend/cuda/cuda_backend.cu), the CUDA path
// keeps the capture model (Note [one capture model]) next to the real capture
// and refuses every illegal call on the host with the model's kind and
// message, before LibTorch sees it. Unlike the cuda backend it
// does not make CUDA refuse the call too: a synchronization on the capturing
// stream would make CUDA invalidate the capture, and then CUDAGraph::
// capture_end() throws (901) before it tells the caching allocator that the
// capture into the pool has ended. The shared pool would stay "being recorded
// to" and every later capture into it would fail. So an illegal call is not
// issued; the message says what CUDA reports about the stream instead, and
// end_capture() of an invalidated capture ends the real capture cleanly and
// discards its graph.
//
// Note [one pool, kept]: the first graph's memory pool (CUDAGraph::pool()) is
// passed to every later capture_begin(), as TensorRT-LLM's CUDAGraphRunner
// passes `graph.pool()` from key to key, so every graph of a backend shares
// one private pool. The first graph itself is kept until the backend is
// destroyed, also after destroy_graph() (which only forgets it): a graph holds
// a use of the pool in both LibTorch allocators (device and pinned host), and
// once every graph is gone the use count drops to zero while the pool id stays
// registered, so the next capture_begin() with that id fails an internal
// assert ("use_count > 0", seen in CachingHostAllocator.h of LibTorch 2.11).
// TensorRT-LLM keeps its graphs, and so its first one, for the runner's life.
//
// Note [model_step bounds, torch]: sequence ids live in device memory. An eager
// model_step checks them on the host (one read-back) before it runs, and throws
// at the launch exactly as the sim does. A captured model_step cannot: a replay
// reads whatever the ids hold then. It is captured as a masked step that clamps
// every id into range for the gather (kv_lens is never read out of bounds),
// writes the old output back when any id is out of range (so nothing changes),
// and records the first such token in a small device tensor. replay() reads
// that record after a graph that holds a model_step and throws the sim's
// kInvalidValue message. The sim stops at the bad op; here the graph's later
// ops still run.#include "torch_detail.h"

#if defined(CAPCHECK_TORCH_CUDA)

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>

#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "capcheck/detail/capture_model.h"
#include "tensor_store.h"

namespace capcheck::torch_detail {

namespace {


using PoolId = decltype(std::declval<at::cuda::CUDAGraph&>().pool());

// Swallows LibTorch warnings, e.g. "The CUDA Graph is empty" for a capture
// whose ops all had zero elements (such a graph replays as a no-op).
class SilentWarnings final : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override { (void)warning; }
};

// The first line of a LibTorch error, without its backtrace.
std::string torch_said(const c10::Error& error) {
  std::string text = error.what_without_backtrace();
  const auto newline = text.find('\n');
  if (newline != std::string::npos) text.resize(newline);
  return " (LibTorch: " + text + ")";
}

// The warning tier of the error tiers (docs/architecture.md), for destructors.
void warn(const char* what, const std::exception& error) noexcept {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&error);
  std::fprintf(stderr, "capcheck: warning: ~TorchCudaBackend: %s: %s\n", what,
               torch_error != nullptr ? torch_error->what_without_backtrace() : error.what());
}

class TorchCudaBackend final : public Backend {
 public:
  explicit TorchCudaBackend(BackendOptions options)
      : options_(options),
        device_(c10::cuda::current_device()),
        stream_(options.legacy_stream ? c10::cuda::getDefaultCUDAStream(device_)
                                      : c10::cuda::getStreamFromPool(false, device_)),
        store_(at::TensorOptions().device(at::Device(at::kCUDA, device_))) {
    limit_torch_threads();
    on_stream("make_torch_backend", [&] {
      error_record_ =
          at::zeros({kErrorRecordSize}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA, device_));
    });
  }

  // Never throws: every failure is reported on stderr.
  ~TorchCudaBackend() override {
    try {
      c10::cuda::CUDAStreamGuard stream_guard(stream_);
      if (capture_graph_) {
        try {
          SilentWarnings silent;
          c10::WarningUtils::WarningHandlerGuard warnings(&silent);
          capture_graph_->capture_end();
        } catch (const c10::Error& error) {
          warn("capture_end", error);
        }
        capture_graph_.reset();
      }
      graphs_.clear();
      deferred_graphs_.clear();
      pool_owner_.reset();
      stream_.synchronize();
    } catch (const std::exception& error) {
      warn("cleanup", error);
    }
  }

  std::string_view name() const override { return "torch"; }

  Buffer allocate(std::string_view label, std::int64_t count) override {
    // As in the sim: subjects allocate up front; an allocation during capture
    // is refused and invalidates it.
    check_not_capturing("allocate");
    capture_.check_allocate(count);
    const Buffer buffer = buffers_.add(label, count);
    on_stream("allocate", [&] { store_.allocate(buffer.slot, count); });
    return buffer;
  }

  void free(Buffer buffer) override {
    check_not_capturing("free");
    buffers_.check_live(buffer, "free");
    on_stream("free", [&] { store_.free(buffer.slot); });
    buffers_.remove(buffer);
  }

  std::string label(Buffer buffer) const override { return buffers_.label(buffer); }

  void upload(Slice dst, const std::int32_t* src) override {
    check_not_capturing("upload");
    buffers_.check_slice(dst, "upload", "destination");
    if (dst.count > 0) on_stream("upload", [&] { store_.upload(dst, src); });
  }

  void download(Slice src, std::int32_t* dst) override {
    check_not_capturing("download");
    buffers_.check_slice(src, "download", "source");
    if (src.count > 0) on_stream("download", [&] { store_.download(src, dst); });
  }

  void launch(const Op& op) override {
    if (!capture_.check_launch(op)) {
      on_stream(op_kind_name(op.kind), [&] { store_.execute(op); });
      return;
    }
    try {
      on_stream(op_kind_name(op.kind), [&] { store_.execute_captured(op, error_record_); });
    } catch (const BackendError&) {
      // LibTorch failed inside the capture: the real capture may be broken.
      capture_.invalidate();
      throw;
    }
    capture_.record(op);
  }

  void begin_capture() override {
    if (options_.legacy_stream) {
      // LibTorch refuses this itself, before any CUDA call; ask it.
      std::string answer = " (LibTorch: accepted it)";
      on_stream("begin_capture", [&] {
        try {
          at::cuda::CUDAGraph probe;
          probe.capture_begin();
          SilentWarnings silent;
          c10::WarningUtils::WarningHandlerGuard warnings(&silent);
          probe.capture_end();
        } catch (const c10::Error& error) {
          answer = torch_said(error);
        }
      });
      capture_.check_begin(true, answer);
    }
    capture_.check_begin(false);
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    // Note [one pool, kept]; thread-local mode, as the cuda backend captures.
    on_stream("begin_capture", [&] { graph->capture_begin(pool_, cudaStreamCaptureModeThreadLocal); });
    capture_graph_ = std::move(graph);
    capture_.begin();
  }

  Graph end_capture() override {
    capture_.check_end();
    const bool invalidated = capture_.ending_invalidated();
    std::unique_ptr<at::cuda::CUDAGraph> graph = std::move(capture_graph_);
    std::string ended = " (LibTorch ended the capture; its graph was discarded)";
    try {
      on_stream("end_capture", [&] {
        SilentWarnings silent;
        c10::WarningUtils::WarningHandlerGuard warnings(&silent);
        graph->capture_end();
      });
    } catch (const BackendError& error) {
      if (!invalidated) {
        // LibTorch failed to end a capture the model held valid: no graph.
        capture_.invalidate();
        try {
          capture_.finish_end();
        } catch (const BackendError&) {
        }
        throw;
      }
      ended = std::string(" (LibTorch: ") + error.what() + ")";
    }
    deferred_graphs_.clear();
    if (invalidated) graph.reset();
    const Graph handle = capture_.finish_end(ended);  // throws for an invalidated capture
    CapturedGraph captured;
    captured.owns_pool = share_pool(*graph);
    captured.graph = std::move(graph);
    for (const RecordedOp& recorded : *capture_.recorded_ops(handle)) {
      captured.reads_error_record |= recorded.op.kind == OpKind::kModelStep;
    }
    graphs_.emplace(handle.id, std::move(captured));
    return handle;
  }

  void replay(Graph graph) override {
    // Capture rule 5: a node that refers to freed memory is reported, never launched.
    capture_.check_replay(graph);
    const auto it = graphs_.find(graph.id);
    on_stream("replay", [&] { it->second.graph->replay(); });
    if (it->second.reads_error_record) report_model_step_error();
  }

  void destroy_graph(Graph graph) override {
    capture_.destroy(graph);
    const auto it = graphs_.find(graph.id);
    // Note [one pool, kept]: the first graph stays. Nothing is destroyed while
    // this thread captures: a graph goes when the capture ends, as in the
    // cuda backend.
    if (it->second.owns_pool) {
      pool_owner_ = std::move(it->second.graph);
    } else if (capturing()) {
      deferred_graphs_.push_back(std::move(it->second.graph));
    }
    graphs_.erase(it);
  }

  void synchronize() override {
    check_not_capturing("synchronize");
    on_stream("synchronize", [&] { stream_.synchronize(); });
  }

  bool capturing() const override { return capture_.capturing(); }
  const std::vector<RecordedOp>* recorded_ops(Graph graph) const override {
    return capture_.recorded_ops(graph);
  }
  void annotate(const char* phase) override { capture_.annotate(phase); }

 private:
  struct CapturedGraph {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    bool reads_error_record = false;  // holds a model_step (Note [model_step bounds, torch])
    bool owns_pool = false;           // the first graph (Note [one pool, kept])
  };

  static constexpr std::int64_t kErrorRecordSize = 4;  // status, token, seq, kv count

  // Runs `body` on this backend's stream and device (guarded()).
  template <typename F>
  void on_stream(const char* call, F body) {
    c10::cuda::CUDAStreamGuard stream_guard(stream_);
    guarded(call, body);
  }

  // Note [capture state on the host, torch].
  void check_not_capturing(const char* call, SourceLocation where = SourceLocation::current()) {
    if (!capturing()) return;
    std::string confirmation;
    if (capture_.capture_active()) {
      cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
      const cudaError_t error = cudaStreamIsCapturing(stream_.stream(), &status);
      confirmation = error != cudaSuccess
                         ? std::string(" (CUDA: ") + cudaGetErrorName(error) + ")"
                     : status == cudaStreamCaptureStatusActive
                         ? std::string(" (not issued; CUDA: the stream's capture is active)")
                         : std::string(" (not issued; CUDA: the stream is not capturing)");
    }
    capture_.check_not_capturing(call, confirmation, where);
  }

  // Note [one pool, kept]: true for the first graph, whose pool every later
  // capture shares.
  bool share_pool(at::cuda::CUDAGraph& graph) {
    const PoolId pool = graph.pool();
    if (pool_set_) {
      CAPCHECK_ASSERT(pool == pool_);
      return false;
    }
    pool_ = pool;
    pool_set_ = true;
    return true;
  }

  // Note [model_step bounds, torch]: reads the error record after a replay.
  void report_model_step_error() {
    at::Tensor record;
    on_stream("replay", [&] { record = error_record_.to(at::kCPU); });
    const std::int64_t* values = record.data_ptr<std::int64_t>();
    if (values[0] == 0) return;
    const std::string message = detail::model_step_out_of_range(values[1], values[2], values[3]);
    on_stream("replay", [&] { error_record_.zero_(); });
    throw_backend_error(BackendErrorKind::kInvalidValue, "model_step", message);
  }

  BackendOptions options_;
  c10::DeviceIndex device_;
  c10::cuda::CUDAStream stream_;  // a pool stream, or the legacy default stream
  detail::BufferTable buffers_;
  TensorStore store_;
  at::Tensor error_record_;  // Note [model_step bounds, torch]

  PoolId pool_{};  // Note [one pool, kept]; {0, 0} until the first graph
  bool pool_set_ = false;
  std::unique_ptr<at::cuda::CUDAGraph> pool_owner_;  // the first graph, once destroyed

  detail::CaptureModel capture_{buffers_};  // Note [one capture model]
  std::unique_ptr<at::cuda::CUDAGraph> capture_graph_;  // the capture in progress
  std::unordered_map<std::uint32_t, CapturedGraph> graphs_;  // device graphs by id
  std::vector<std::unique_ptr<at::cuda::CUDAGraph>> deferred_graphs_;
};


}  // namespace

std::unique_ptr<Backend> make_torch_cuda_backend(BackendOptions options) {
  return std::make_unique<TorchCudaBackend>(options);
}

bool torch_cuda_probe(std::string* why) {
  static const std::pair<bool, std::string> probe = []() -> std::pair<bool, std::string> {
    try {
      if (torch::cuda::is_available()) return {true, std::string()};
      return {false, std::string("no CUDA device: ") + kTorchVersion + " sees none"};
    } catch (const c10::Error& error) {
      return {false, std::string("no CUDA device: ") + error.what_without_backtrace()};
    }
  }();
  if (why != nullptr) *why = probe.second;
  return probe.first;
}

std::string torch_cuda_device_name() {
  try {
    const cudaDeviceProp* properties = at::cuda::getDeviceProperties(c10::cuda::current_device());
    return properties->name;
  } catch (const c10::Error& error) {
    return error.what_without_backtrace();
  }
}

}  // namespace capcheck::torch_detail

#endif  // CAPCHECK_TORCH_CUDA
