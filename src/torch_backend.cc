// The LibTorch backend (DESIGN.md §4.2). Every backend op is a tensor op on
// int32 tensors, one tensor per buffer, allocated once. Two placements:
//
// - CPU (any LibTorch, Debian's 1.13 included): capture follows the recorded-
//   capture model shared with `sim` (detail::RecordingBackend).
// - CUDA (CAPCHECK_TORCH_CUDA, set by CMake only for a LibTorch built with
//   CUDA, and a device at run time): tensors on the device, every op issued on
//   a side stream from LibTorch's pool, and a capture is a real
//   at::cuda::CUDAGraph sharing one memory pool across graphs.
//
// Note [capture state on the host, torch]: as the cuda backend does (Note
// [capture state on the host] in src/cuda/cuda_backend.cu), the CUDA path keeps
// the recorded model's three capture states (none, active, invalidated) next
// to the real capture and refuses every illegal call on the host with the
// sim's kind and message, before LibTorch sees it. Unlike the cuda backend it
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
// ops still run.
#include "capcheck/torch_backend.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

#if defined(CAPCHECK_TORCH_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

#include "capcheck/errors.h"
#include "capcheck/model.h"
#include "detail/buffer_table.h"
#include "detail/recording_backend.h"

namespace capcheck {

namespace {

#if defined(TORCH_VERSION)
constexpr const char* kTorchVersion = "LibTorch " TORCH_VERSION;
#else
constexpr const char* kTorchVersion = "LibTorch";
#endif

[[noreturn]] void fail(BackendErrorKind kind, const char* call, const std::string& message) {
  throw BackendError(kind, call, message, __FILE__, __LINE__);
}

// Note [uint32 on LibTorch]: LibTorch has no uint32 tensors, so the model mix
// runs on int64 tensors holding the uint32 bit pattern (always in [0, 2^32)).
// Every multiplier is below 2^31, so a product stays below 2^63 and never
// overflows; masking with 0xFFFFFFFF afterwards is the uint32 wrap, and right
// shifts of non-negative int64 values are logical shifts.
constexpr std::int64_t kUint32Mask = 0xFFFFFFFFLL;
constexpr std::int64_t kInt32Limit = 0x80000000LL;    // 2^31
constexpr std::int64_t kUint32Modulus = 0x100000000LL;  // 2^32
static_assert(kMixMultiplier1 < kInt32Limit && kMixMultiplier2 < kInt32Limit &&
                  kMixMultiplier3 < kInt32Limit,
              "Note [uint32 on LibTorch] needs multipliers below 2^31");

// The uint32 pattern of int32 values, widened to int64.
at::Tensor to_uint32_pattern(const at::Tensor& values) {
  return values.to(at::kLong).bitwise_and(kUint32Mask);
}

// h * multiplier modulo 2^32, on uint32 patterns.
at::Tensor multiply_wrapped(const at::Tensor& h, std::uint32_t multiplier) {
  return h.mul(static_cast<std::int64_t>(multiplier)).bitwise_and(kUint32Mask);
}

// h ^ (h >> shift), on uint32 patterns.
at::Tensor xor_shift(const at::Tensor& h, std::int64_t shift) {
  return h.bitwise_xor(h.bitwise_right_shift(shift));
}

// The int32 whose two's-complement bits are the uint32 pattern `h`.
at::Tensor from_uint32_pattern(const at::Tensor& h) {
  return at::where(h.ge(kInt32Limit), h.sub(kUint32Modulus), h).to(at::kInt);
}

// model_mix (capcheck/model.h) on whole tensors, bitwise identical to it.
at::Tensor model_mix_tensor(const at::Tensor& input_ids, const at::Tensor& position_ids,
                            const at::Tensor& kv_len_of_token) {
  at::Tensor h = to_uint32_pattern(input_ids);
  h = multiply_wrapped(h, kMixMultiplier1);
  h = xor_shift(h, 15);
  h = h.bitwise_xor(to_uint32_pattern(position_ids));
  h = multiply_wrapped(h, kMixMultiplier2);
  h = xor_shift(h, 13);
  h = h.bitwise_xor(to_uint32_pattern(kv_len_of_token));
  h = multiply_wrapped(h, kMixMultiplier3);
  h = xor_shift(h, 16);
  return from_uint32_pattern(h);
}

bool overlaps(const Slice& a, const Slice& b) {
  return a.buffer.slot == b.buffer.slot && a.offset < b.offset + b.count &&
         b.offset < a.offset + a.count;
}

// Tensors are tiny; intra-op threads would only add overhead. LibTorch's
// thread count is process-wide, so it is set once.
void limit_torch_threads() {
  static std::once_flag once;
  std::call_once(once, [] { at::set_num_threads(1); });
}

// Runs `body` under InferenceMode, reporting a LibTorch failure as a backend
// failure of `call`. BackendError and InternalError pass through unchanged.
// The tensors never need autograd, and tensors made in inference mode may only
// be updated in place under it.
template <typename F>
void guarded(const char* call, F body) {
  c10::InferenceMode inference_mode;
  try {
    body();
  } catch (const c10::Error& error) {
    throw BackendError(BackendErrorKind::kDevice, call,
                       std::string("LibTorch: ") + error.what_without_backtrace(), __FILE__,
                       __LINE__);
  }
}

// One tensor per buffer slot and every backend op as tensor ops on them, on
// whichever device `options` names. Called only with checked, live, in-bounds
// slices (detail::BufferTable).
class TensorStore {
 public:
  explicit TensorStore(at::TensorOptions options) : options_(options.dtype(at::kInt)) {}

  void allocate(std::uint32_t slot, std::int64_t count) {
    if (slot >= memory_.size()) memory_.resize(slot + 1);
    memory_[slot] = at::zeros({count}, options_);
  }
  void free(std::uint32_t slot) { memory_[slot] = at::Tensor(); }

  void upload(const Slice& dst, const std::int32_t* src) {
    // from_blob does not copy and never writes through the pointer here; a
    // copy from pageable host memory is synchronous.
    const at::Tensor host = at::from_blob(const_cast<std::int32_t*>(src), {dst.count},
                                          at::TensorOptions().dtype(at::kInt));
    segment(dst).copy_(host);
  }
  void download(const Slice& src, std::int32_t* dst) {
    at::Tensor host = at::from_blob(dst, {src.count}, at::TensorOptions().dtype(at::kInt));
    host.copy_(segment(src));
  }

  /// Runs `op` now. A model_step checks its sequence ids on the host first
  /// (a read-back on CUDA).
  void execute(const Op& op) {
    switch (op.kind) {
      case OpKind::kAdd:
        // Wrapping arithmetic, as on the GPU and in the sim.
        segment(op.dst).add_(source(op));
        return;
      case OpKind::kSub:
        segment(op.dst).sub_(source(op));
        return;
      case OpKind::kCopy:
        segment(op.dst).copy_(source(op));
        return;
      case OpKind::kFill:
        segment(op.dst).fill_(op.value);
        return;
      case OpKind::kModelStep:
        model_step(op);
        return;
    }
    CAPCHECK_ASSERT(false && "unknown op kind");
  }

  /// Issues `op` on a capturing stream: nothing may read device memory back.
  /// Note [model_step bounds, torch]: a model_step is masked, and reports an
  /// out-of-range sequence id in `error_record` (status, token, seq, kv count).
  void execute_captured(const Op& op, at::Tensor& error_record) {
    if (op.kind != OpKind::kModelStep) {
      execute(op);
      return;
    }
    if (op.dst.count == 0) return;
    const std::int64_t count = op.dst.count;
    const std::int64_t kv_lens_count = op.kv_lens.count;
    const at::Tensor seq_ids = segment(op.seq_ids).to(at::kLong);
    const at::Tensor outside = seq_ids.lt(0).logical_or(seq_ids.ge(kv_lens_count));
    const at::Tensor any_outside = outside.any();
    const at::Tensor kv_len_of_token =
        kv_lens_count == 0
            ? at::zeros_like(seq_ids)
            : segment(op.kv_lens).index_select(0, seq_ids.clamp(0, kv_lens_count - 1));
    const at::Tensor mixed =
        model_mix_tensor(segment(op.src), segment(op.positions), kv_len_of_token);
    at::Tensor out = segment(op.dst);
    out.copy_(at::where(any_outside, out, mixed));

    const at::Tensor tokens = at::arange(count, seq_ids.options());
    const at::Tensor first_outside =
        at::where(outside, tokens, at::full_like(tokens, count)).min().clamp_max(count - 1).view({1});
    const at::Tensor record =
        at::cat({any_outside.to(at::kLong).view({1}), first_outside,
                 seq_ids.index_select(0, first_outside),
                 at::full({1}, kv_lens_count, seq_ids.options())});
    // The first error is kept until it is reported, like the sim's first throw.
    const at::Tensor keep = error_record.narrow(0, 0, 1).ne(0).logical_or(any_outside.logical_not());
    error_record.copy_(at::where(keep, error_record, record));
  }

 private:
  // The source of add/sub/copy. An overlapping source is cloned first, so the
  // op reads the values from before it writes, exactly like the sim (LibTorch
  // also rejects partially overlapping in-place operands).
  at::Tensor source(const Op& op) {
    at::Tensor src = segment(op.src);
    return overlaps(op.src, op.dst) ? src.clone() : src;
  }

  void model_step(const Op& op) {
    const at::Tensor seq_ids = segment(op.seq_ids).to(at::kLong);
    const std::int64_t kv_lens_count = op.kv_lens.count;
    const at::Tensor outside = seq_ids.lt(0).logical_or(seq_ids.ge(kv_lens_count));
    if (outside.any().item<bool>()) {
      const std::int64_t first_bad = outside.nonzero().select(1, 0)[0].item<std::int64_t>();
      const std::int64_t seq = seq_ids[first_bad].item<std::int64_t>();
      // The GPU would read out of bounds (an illegal address); report it and
      // write nothing, as the sim does.
      fail(BackendErrorKind::kInvalidValue, "model_step",
           "seq_ids[" + std::to_string(first_bad) + "] = " + std::to_string(seq) +
               " is outside kv_lens of " + std::to_string(kv_lens_count));
    }
    const at::Tensor kv_len_of_token = segment(op.kv_lens).index_select(0, seq_ids);
    const at::Tensor mixed =
        model_mix_tensor(segment(op.src), segment(op.positions), kv_len_of_token);
    segment(op.dst).copy_(mixed);
  }

  at::Tensor segment(const Slice& slice) {
    return memory_[slice.buffer.slot].narrow(0, slice.offset, slice.count);
  }

  at::TensorOptions options_;
  std::vector<at::Tensor> memory_;
};

// ---------------------------------------------------------------------------
// CPU: the recorded-capture model.

class TorchCpuBackend final : public detail::RecordingBackend {
 public:
  explicit TorchCpuBackend(BackendOptions options)
      : RecordingBackend(options), store_(at::TensorOptions().device(at::kCPU)) {
    limit_torch_threads();
  }
  std::string_view name() const override { return "torch"; }

 protected:
  void storage_allocate(std::uint32_t slot, std::int64_t count) override {
    guarded("allocate", [&] { store_.allocate(slot, count); });
  }
  void storage_free(std::uint32_t slot) override {
    guarded("free", [&] { store_.free(slot); });
  }
  void storage_upload(const Slice& dst, const std::int32_t* src) override {
    guarded("upload", [&] { store_.upload(dst, src); });
  }
  void storage_download(const Slice& src, std::int32_t* dst) override {
    guarded("download", [&] { store_.download(src, dst); });
  }
  void execute(const Op& op) override {
    guarded(op_kind_name(op.kind), [&] { store_.execute(op); });
  }

 private:
  TensorStore store_;
};

// ---------------------------------------------------------------------------
// CUDA: real CUDA graphs.

#if defined(CAPCHECK_TORCH_CUDA)

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

// The warning tier of STYLE.md, for destructors.
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
    if (count < 0) fail(BackendErrorKind::kInvalidValue, "allocate", "negative element count");
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
    buffers_.check_op(op);
    switch (capture_) {
      case CaptureState::kNone:
        on_stream(op_kind_name(op.kind), [&] { store_.execute(op); });
        return;
      case CaptureState::kActive:
        try {
          on_stream(op_kind_name(op.kind), [&] { store_.execute_captured(op, error_record_); });
        } catch (const BackendError&) {
          // LibTorch failed inside the capture: the real capture may be broken.
          capture_ = CaptureState::kInvalidated;
          throw;
        }
        capturing_ops_.push_back(op);
        return;
      case CaptureState::kInvalidated:
        // CUDA keeps failing work on an invalidated capture until it is ended.
        fail(BackendErrorKind::kCaptureInvalidated, op_kind_name(op.kind),
             "launch on a stream whose capture was invalidated");
    }
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
      fail(BackendErrorKind::kCaptureUnsupported, "begin_capture",
           "capture on the legacy default stream is not allowed; use a non-blocking stream" +
               answer);
    }
    if (capturing()) {
      fail(BackendErrorKind::kIllegalState, "begin_capture", "the stream is already capturing");
    }
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    // Note [one pool, kept]; thread-local mode, as the cuda backend captures.
    on_stream("begin_capture", [&] { graph->capture_begin(pool_, cudaStreamCaptureModeThreadLocal); });
    capture_graph_ = std::move(graph);
    capture_ = CaptureState::kActive;
    capturing_ops_.clear();
  }

  Graph end_capture() override {
    if (capture_ == CaptureState::kNone) {
      fail(BackendErrorKind::kIllegalState, "end_capture", "the stream is not capturing");
    }
    const bool invalidated = capture_ == CaptureState::kInvalidated;
    capture_ = CaptureState::kNone;
    std::vector<Op> ops = std::move(capturing_ops_);
    capturing_ops_.clear();
    std::unique_ptr<at::cuda::CUDAGraph> graph = std::move(capture_graph_);
    std::string ended = " (LibTorch ended the capture; its graph was discarded)";
    try {
      on_stream("end_capture", [&] {
        SilentWarnings silent;
        c10::WarningUtils::WarningHandlerGuard warnings(&silent);
        graph->capture_end();
      });
    } catch (const BackendError& error) {
      if (!invalidated) throw;
      ended = std::string(" (LibTorch: ") + error.what() + ")";
    }
    deferred_graphs_.clear();
    if (invalidated) {
      graph.reset();
      fail(BackendErrorKind::kCaptureInvalidated, "end_capture",
           "the capture was invalidated by an illegal call; no graph was produced" + ended);
    }
    CapturedGraph captured;
    captured.owns_pool = share_pool(*graph);
    captured.graph = std::move(graph);
    captured.reads_error_record = false;
    for (const Op& op : ops) captured.reads_error_record |= op.kind == OpKind::kModelStep;
    captured.ops = std::move(ops);
    const Graph handle{next_graph_id_++};
    graphs_.emplace(handle.id, std::move(captured));
    return handle;
  }

  void replay(Graph graph) override {
    if (capturing()) {
      fail(BackendErrorKind::kCaptureUnsupported, "replay", "graph launch while capturing");
    }
    const auto it = graphs_.find(graph.id);
    if (it == graphs_.end()) {
      fail(BackendErrorKind::kInvalidValue, "replay", "not a live graph of this backend");
    }
    // Capture rule 5: a node that refers to freed memory is reported, never launched.
    for (const Op& op : it->second.ops) buffers_.check_op(op);
    on_stream("replay", [&] { it->second.graph->replay(); });
    if (it->second.reads_error_record) report_model_step_error();
  }

  void destroy_graph(Graph graph) override {
    const auto it = graphs_.find(graph.id);
    if (it == graphs_.end()) {
      fail(BackendErrorKind::kInvalidValue, "destroy_graph", "not a live graph of this backend");
    }
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

  bool capturing() const override { return capture_ != CaptureState::kNone; }

 private:
  enum class CaptureState { kNone, kActive, kInvalidated };

  struct CapturedGraph {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    std::vector<Op> ops;             // what was captured, checked before every replay
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
  void check_not_capturing(const char* call) {
    if (!capturing()) return;
    std::string confirmation;
    if (capture_ == CaptureState::kActive) {
      cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
      const cudaError_t error = cudaStreamIsCapturing(stream_.stream(), &status);
      confirmation = error != cudaSuccess
                         ? std::string(" (CUDA: ") + cudaGetErrorName(error) + ")"
                     : status == cudaStreamCaptureStatusActive
                         ? std::string(" (not issued; CUDA: the stream's capture is active)")
                         : std::string(" (not issued; CUDA: the stream is not capturing)");
    }
    capture_ = CaptureState::kInvalidated;
    fail(BackendErrorKind::kCaptureUnsupported, call,
         "a synchronizing call while the stream is capturing; the capture is now invalidated" +
             confirmation);
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
    const std::string message = "seq_ids[" + std::to_string(values[1]) + "] = " +
                                std::to_string(values[2]) + " is outside kv_lens of " +
                                std::to_string(values[3]);
    on_stream("replay", [&] { error_record_.zero_(); });
    fail(BackendErrorKind::kInvalidValue, "model_step", message);
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

  CaptureState capture_ = CaptureState::kNone;
  std::unique_ptr<at::cuda::CUDAGraph> capture_graph_;  // the capture in progress
  std::vector<Op> capturing_ops_;
  std::unordered_map<std::uint32_t, CapturedGraph> graphs_;
  std::vector<std::unique_ptr<at::cuda::CUDAGraph>> deferred_graphs_;
  std::uint32_t next_graph_id_ = 1;
};

#endif  // CAPCHECK_TORCH_CUDA

}  // namespace

bool torch_cuda_available(std::string* why) {
#if defined(CAPCHECK_TORCH_CUDA)
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
#else
  if (why != nullptr) {
    *why = std::string("no CUDA device: ") + kTorchVersion + " was built without CUDA";
  }
  return false;
#endif
}

std::unique_ptr<Backend> make_torch_backend(BackendOptions options, TorchDevice device) {
  if (device == TorchDevice::kAuto) {
    device = torch_cuda_available() ? TorchDevice::kCuda : TorchDevice::kCpu;
  }
  if (device == TorchDevice::kCpu) return std::make_unique<TorchCpuBackend>(options);
  std::string why;
  if (!torch_cuda_available(&why)) fail(BackendErrorKind::kUnavailable, "make_torch_backend", why);
#if defined(CAPCHECK_TORCH_CUDA)
  return std::make_unique<TorchCudaBackend>(options);
#else
  CAPCHECK_ASSERT(false && "torch_cuda_available() is false without CAPCHECK_TORCH_CUDA");
  return nullptr;
#endif
}

const char* torch_backend_description() {
  static const std::string description = []() -> std::string {
#if defined(CAPCHECK_TORCH_CUDA)
    if (torch_cuda_available()) {
      try {
        const cudaDeviceProp* properties =
            at::cuda::getDeviceProperties(c10::cuda::current_device());
        return std::string(kTorchVersion) + " (CUDA, " + properties->name + ")";
      } catch (const c10::Error& error) {
        return std::string(kTorchVersion) + " (CUDA, " + error.what_without_backtrace() + ")";
      }
    }
#endif
    return std::string(kTorchVersion) + " (CPU)";
  }();
  return description.c_str();
}

}  // namespace capcheck
