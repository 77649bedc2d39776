// The raw CUDA backend (docs/gpu.md): int32 device buffers, one kernel per
// backend op, and real stream capture. Its capture rules and error kinds are
// the recorded-capture model's (detail/recording_backend.cc), so the sim and a
// GPU answer every call alike; CUDA itself is asked wherever it can answer.
//
// Note [capture state on the host]: the backend keeps the same three-state
// capture model as RecordingBackend (none, active, invalidated) next to CUDA's
// own. Every illegal call is refused on the host with the sim's kind and
// message, and where CUDA can confirm it (a synchronization on a capturing
// stream, a capture on the legacy stream, the end of an invalidated capture),
// CUDA is asked too and its answer is appended to the message, so a test can
// see that the real driver agrees with the model.
//
// Note [one slab, one readback]: buffers are carved out of large device slabs
// (never one cudaMalloc per buffer, never a cudaFree on free()), so that a
// subject's buffers are contiguous and a download copies the slab's used part
// once into a pinned host mirror. Later downloads read that mirror until the
// next device write (launch, upload, replay, allocation) makes it stale. The
// properties download every persistent buffer separately; with the mirror, a
// snapshot of nine buffers costs one device round trip instead of nine. Freed
// blocks go back to the slab's free list; a graph that still refers to one is
// refused on the host at replay (capture rule 5), before any kernel could read it.
//
// Note [model_step bounds]: seq_ids live in device memory, so their range can
// only be known on the device (a replay reads whatever they hold then). The
// model step runs in one thread block: it first checks every sequence id, and
// if any is out of range it writes nothing (as the sim) and records the first
// such token in a word of mapped pinned memory; kv_lens is never read out of
// bounds. The host reads that word after every stream synchronization
// (download, synchronize) and throws kInvalidValue with the sim's message.
// The sim throws at the launch itself; here the same error surfaces at the
// next synchronizing call, as a CUDA kernel fault would, and the ops issued in
// between still run.
//
// Note [eager batching]: outside capture, ops are not launched one by one.
// They are queued on the host (after the same argument checks, which still
// throw at launch()) and issued as one kernel that runs them in order in one
// thread block, a barrier between ops, before the next call that needs the
// stream (download, synchronize, allocate, begin_capture, replay). Uploads
// join the queue: their bytes are staged in pinned memory, all staged bytes
// travel in one host-to-device copy at the flush, and a queued copy moves
// each upload to its destination in program order.
// Ops that touch disjoint elements form a wave and run without a barrier
// between them (a reset's twelve fills are one wave); an op that reads or
// writes what an earlier op of the wave writes (or writes what it reads)
// starts a new wave. Stream order, and so every result, is that of one
// launch per op; only the launch count changes. Captured ops
// are never batched: each is its own kernel node in the graph, as an engine's
// would be. cuda_backend_set_eager_batching() turns batching off.
#include "capcheck/cuda_backend.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "call_profile.h"
#include "capcheck/detail/buffer_table.h"
#include "capcheck/detail/capture_model.h"
#include "capcheck/errors.h"
#include "cuda_check.h"
#include "handles.h"
#include "kernels.cuh"
#include "slab.h"

namespace capcheck {

namespace {

using namespace cuda_detail;

constexpr std::int64_t kAlignBytes = 256;           // every buffer starts on this
constexpr std::int64_t kSlabBytesMin = 4 << 20;     // first slab: 1 Mi elements
constexpr std::int64_t kMirrorBytesMax = 1 << 20;   // Note [one slab, one readback]
constexpr std::int64_t kStagingBytesMin = 1 << 20;  // pinned upload/download staging

std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// add/sub/copy read every source element before writing (the sim's
// semantics); a kernel does so only when the slices do not overlap at an offset.
bool needs_staging(const Op& op) {
  return op.kind != OpKind::kFill && op.kind != OpKind::kModelStep && overlaps(op.src, op.dst) &&
         op.src.offset != op.dst.offset;
}


class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(BackendOptions options) : options_(options), capture_(buffers_) {
    std::string why;
    if (!cuda_device_available(&why)) {
      throw_backend_error(BackendErrorKind::kUnavailable, "make_cuda_backend", why);
    }
    if (options_.legacy_stream) {
      stream_raw_ = cudaStreamLegacy;
    } else {
      cudaStream_t stream = nullptr;
      CAPCHECK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      stream_.reset(stream);
      stream_raw_ = stream;
    }
    error_host_ = pinned_alloc(sizeof(KernelErrorRecord), cudaHostAllocMapped);
    std::memset(error_host_.get(), 0, sizeof(KernelErrorRecord));
    void* device_pointer = nullptr;
    CAPCHECK_CUDA_CHECK(cudaHostGetDevicePointer(&device_pointer, error_host_.get(), 0));
    error_device_ = static_cast<KernelErrorRecord*>(device_pointer);
    upload_staging_ = pinned_alloc(kStagingBytesMin);
    upload_device_ = device_alloc(kStagingBytesMin);
    upload_staging_bytes_ = kStagingBytesMin;
    download_staging_ = pinned_alloc(kStagingBytesMin);
    download_staging_bytes_ = kStagingBytesMin;
  }

  ~CudaBackend() override {
    if (capture_.capturing()) {
      cudaGraph_t graph = nullptr;
      CAPCHECK_CUDA_WARN(cudaStreamEndCapture(stream_raw_, &graph));
      GraphHandle discard(graph);
    }
    try {
      flush();
    } catch (const BackendError& e) {
      std::fprintf(stderr, "capcheck: warning: ~CudaBackend: %s\n", e.what());
    }
    CAPCHECK_CUDA_WARN(cudaStreamSynchronize(stream_raw_));
  }

  std::string_view name() const override { return "cuda"; }

  Buffer allocate(std::string_view label, std::int64_t count) override {
    Timer timer(*this, Call::kAllocate);
    // As in the sim: cudaMalloc is not permitted while this thread captures
    // (thread-local mode); it fails and invalidates the capture.
    check_not_capturing("allocate");
    capture_.check_allocate(count);
    const Region region = carve(count);
    const Buffer buffer = buffers_.add(label, count);
    if (buffer.slot >= regions_.size()) regions_.resize(buffer.slot + 1);
    regions_[buffer.slot] = region;
    if (region.bytes > 0) {
      flush();
      CAPCHECK_CUDA_CHECK(cudaMemsetAsync(region.data, 0, static_cast<std::size_t>(region.bytes),
                                          stream_raw_));
      ++device_epoch_;
    }
    ensure_stage_capacity(count);
    return buffer;
  }

  void free(Buffer buffer) override {
    Timer timer(*this, Call::kFree);
    check_not_capturing("free");  // cudaFree synchronizes: illegal while capturing
    buffers_.check_live(buffer, "free");
    // The block returns to its slab (Note [one slab, one readback]); queued
    // ops that still write it run before any later use, in stream order.
    release(regions_[buffer.slot]);
    regions_[buffer.slot] = Region{};
    buffers_.remove(buffer);
  }

  std::string label(Buffer buffer) const override { return buffers_.label(buffer); }

  void upload(Slice dst, const std::int32_t* src) override {
    Timer timer(*this, Call::kUpload);
    check_not_capturing("upload");
    buffers_.check_slice(dst, "upload", "destination");
    if (dst.count == 0) return;
    const std::int64_t bytes = dst.count * static_cast<std::int64_t>(sizeof(std::int32_t));
    reserve_staging(round_up(bytes, 64));
    const std::int64_t at = upload_used_;
    std::memcpy(static_cast<char*>(upload_staging_.get()) + at, src, static_cast<std::size_t>(bytes));
    ++device_epoch_;
    if (batching_ && dst.count <= kBatchElementsMax) {
      upload_used_ += round_up(bytes, 64);
      // Note [eager batching]: the staged bytes travel in one copy at the
      // next flush; the batch then copies them to the destination.
      BatchedOp queued{};
      queued.kind = OpKind::kCopy;
      queued.dst = element(dst);
      queued.src = reinterpret_cast<const std::int32_t*>(static_cast<char*>(upload_device_.get()) + at);
      queued.count = static_cast<std::int32_t>(dst.count);
      if (conflicts(dst, true)) end_wave();
      wave_writes_.push_back(dst);
      push(queued);
      return;
    }
    flush();  // everything queued and staged before this upload goes first
    CAPCHECK_CUDA_CHECK(cudaMemcpyAsync(element(dst), static_cast<char*>(upload_staging_.get()) + at,
                                        static_cast<std::size_t>(bytes), cudaMemcpyHostToDevice,
                                        stream_raw_));
    upload_used_ += round_up(bytes, 64);
    upload_flushed_ = upload_used_;
  }

  void download(Slice src, std::int32_t* dst) override {
    check_not_capturing("download");
    buffers_.check_slice(src, "download", "source");
    if (src.count == 0) return;
    const Region& region = regions_[src.buffer.slot];
    Slab& slab = *slabs_[static_cast<std::size_t>(region.slab)];
    const std::int64_t bytes = src.count * static_cast<std::int64_t>(sizeof(std::int32_t));
    const std::int64_t at =
        region.offset + src.offset * static_cast<std::int64_t>(sizeof(std::int32_t));
    if (slab.used_end <= kMirrorBytesMax) {
      if (slab.mirror_epoch == device_epoch_) {
        Timer timer(*this, Call::kDownloadCached);
        std::memcpy(dst, static_cast<const char*>(slab.mirror.get()) + at,
                    static_cast<std::size_t>(bytes));
        return;
      }
      Timer timer(*this, Call::kDownload);
      flush();
      if (!slab.mirror) slab.mirror = pinned_alloc(std::min(slab.bytes, kMirrorBytesMax));
      CAPCHECK_CUDA_CHECK(cudaMemcpyAsync(slab.mirror.get(), slab.base(),
                                          static_cast<std::size_t>(slab.used_end),
                                          cudaMemcpyDeviceToHost, stream_raw_));
      sync_stream();
      slab.mirror_epoch = device_epoch_;
      std::memcpy(dst, static_cast<const char*>(slab.mirror.get()) + at,
                  static_cast<std::size_t>(bytes));
      return;
    }
    Timer timer(*this, Call::kDownload);
    flush();
    if (bytes > download_staging_bytes_) {
      download_staging_bytes_ =
          std::max(2 * download_staging_bytes_, round_up(bytes, kAlignBytes));
      download_staging_ = pinned_alloc(download_staging_bytes_);
    }
    CAPCHECK_CUDA_CHECK(cudaMemcpyAsync(download_staging_.get(), slab.base() + at,
                                        static_cast<std::size_t>(bytes), cudaMemcpyDeviceToHost,
                                        stream_raw_));
    sync_stream();
    std::memcpy(dst, download_staging_.get(), static_cast<std::size_t>(bytes));
  }

  void launch(const Op& op) override {
    Timer timer(*this, Call::kLaunch);
    if (capture_.check_launch(op)) {
      enqueue(op);
      capture_.record(op);
      return;
    }
    if (batching_) {
      queue(op);
    } else {
      enqueue(op);
    }
    ++device_epoch_;
  }

  void begin_capture() override {
    Timer timer(*this, Call::kBeginCapture);
    if (options_.legacy_stream) {
      // Note [capture state on the host]: CUDA refuses this itself; ask it.
      flush();
      const cudaError_t error =
          cudaStreamBeginCapture(stream_raw_, cudaStreamCaptureModeThreadLocal);
      if (error == cudaSuccess) {
        cudaGraph_t graph = nullptr;
        CAPCHECK_CUDA_WARN(cudaStreamEndCapture(stream_raw_, &graph));
        GraphHandle discard(graph);
      }
      (void)cudaGetLastError();
      capture_.check_begin(true, error == cudaSuccess ? std::string(" (CUDA: accepted it)")
                                                      : cuda_said(error));
    }
    capture_.check_begin(false);
    flush();  // queued eager work runs before the capture, not inside it
    CAPCHECK_CUDA_CHECK(cudaStreamBeginCapture(stream_raw_, cudaStreamCaptureModeThreadLocal));
    capture_.begin();
    captured_nodes_count_ = 0;
  }

  Graph end_capture() override {
    Timer timer(*this, Call::kEndCapture);
    capture_.check_end();
    const bool invalidated = capture_.ending_invalidated();
    cudaGraph_t raw_graph = nullptr;
    const cudaError_t error = cudaStreamEndCapture(stream_raw_, &raw_graph);
    GraphHandle graph(raw_graph);
    if (error != cudaSuccess) (void)cudaGetLastError();
    deferred_execs_.clear();
    if (!invalidated && error != cudaSuccess) {
      // The driver ended a capture the model held valid: no graph, and the
      // driver's own failure is the one to report.
      capture_.invalidate();
      try {
        capture_.finish_end();
      } catch (const BackendError&) {
      }
      cuda_detail::throw_error(error, "cudaStreamEndCapture(stream_raw_, &raw_graph)", __FILE__,
                               __LINE__);
    }
    GraphExecHandle exec_handle;
    if (!invalidated && captured_nodes_count_ > 0) {
      // Otherwise only slices of length zero were captured: nothing to launch.
      cudaGraphExec_t exec = nullptr;
      CAPCHECK_CUDA_CHECK(cudaGraphInstantiate(&exec, graph.get(), 0));
      exec_handle.reset(exec);
    }
    const Graph handle = capture_.finish_end(
        error != cudaSuccess ? cuda_said(error)
                             : std::string(" (CUDA did not invalidate it itself)"));
    execs_.emplace(handle.id, std::move(exec_handle));
    return handle;
  }

  void replay(Graph graph) override {
    Timer timer(*this, Call::kReplay);
    // Capture rule 5: a node that refers to freed memory is reported, never launched.
    capture_.check_replay(graph);
    const GraphExecHandle& exec = execs_.at(graph.id);
    if (exec) {
      flush();
      CAPCHECK_CUDA_CHECK(cudaGraphLaunch(exec.get(), stream_raw_));
      ++device_epoch_;
    }
  }

  void destroy_graph(Graph graph) override {
    Timer timer(*this, Call::kDestroyGraph);
    capture_.destroy(graph);
    // No CUDA call while this thread captures (thread-local mode forbids
    // unsafe calls): the executable graph is destroyed when the capture ends.
    const auto it = execs_.find(graph.id);
    if (capturing()) deferred_execs_.push_back(std::move(it->second));
    execs_.erase(it);
  }

  void synchronize() override {
    Timer timer(*this, Call::kSynchronize);
    check_not_capturing("synchronize");
    flush();
    sync_stream();
  }

  bool capturing() const override { return capture_.capturing(); }
  const std::vector<RecordedOp>* recorded_ops(Graph graph) const override {
    return capture_.recorded_ops(graph);
  }
  void annotate(const char* phase) override { capture_.annotate(phase); }

  void set_profiling(bool enabled) {
    profiling_ = enabled;
    if (enabled) profile_ = {};
  }

  void set_eager_batching(bool enabled) {
    flush();
    batching_ = enabled;
  }

  std::vector<CudaCallProfile> profile() const {
    std::vector<CudaCallProfile> out;
    for (std::size_t i = 0; i < profile_.size(); ++i) {
      if (profile_[i].count == 0) continue;
      out.push_back(CudaCallProfile{kCallNames[i], profile_[i].count, profile_[i].seconds});
    }
    return out;
  }

 private:
  struct ProfileEntry {
    std::int64_t count = 0;
    double seconds = 0.0;
  };

  // Host time of one backend call, when profiling is on.
  class Timer {
   public:
    Timer(CudaBackend& backend, Call call) : backend_(backend), call_(call) {
      if (backend_.profiling_) start_ = std::chrono::steady_clock::now();
    }
    ~Timer() {
      if (!backend_.profiling_) return;
      ProfileEntry& entry = backend_.profile_[static_cast<std::size_t>(call_)];
      ++entry.count;
      entry.seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

   private:
    CudaBackend& backend_;
    Call call_;
    std::chrono::steady_clock::time_point start_;
  };

  static std::string cuda_said(cudaError_t error) {
    return " (CUDA: " + cuda_detail::error_text(error) + ")";
  }

  // The capture model's rule 4, with the driver asked to confirm: a
  // synchronizing call on a capturing stream fails with
  // cudaErrorStreamCaptureUnsupported and invalidates the capture. Make the
  // driver see the same illegal synchronization (Note [capture state on the host]).
  void check_not_capturing(const char* call, SourceLocation where = SourceLocation::current()) {
    if (!capturing()) return;
    std::string confirmation;
    if (capture_.capture_active()) {
      const cudaError_t error = cudaStreamSynchronize(stream_raw_);
      (void)cudaGetLastError();
      confirmation = error == cudaSuccess ? std::string(" (CUDA: accepted it)") : cuda_said(error);
    }
    capture_.check_not_capturing(call, confirmation, where);
  }

  // Waits for the stream; the upload staging buffer is then free again.
  void wait_stream() {
    flush();
    CAPCHECK_CUDA_CHECK(cudaStreamSynchronize(stream_raw_));
    upload_used_ = 0;
    upload_flushed_ = 0;
  }

  // Room for `bytes` more staged upload bytes. Staged bytes are reused only
  // after the stream has consumed them (a synchronization).
  void reserve_staging(std::int64_t bytes) {
    if (upload_used_ + bytes <= upload_staging_bytes_) return;
    wait_stream();
    if (bytes <= upload_staging_bytes_) return;
    upload_staging_bytes_ = std::max(2 * upload_staging_bytes_, round_up(bytes, kAlignBytes));
    upload_staging_ = pinned_alloc(upload_staging_bytes_);
    upload_device_ = device_alloc(upload_staging_bytes_);
  }

  // Waits for the stream and reports a kernel-side error (Note [model_step bounds]).
  void sync_stream() {
    wait_stream();
    auto* record = static_cast<KernelErrorRecord*>(error_host_.get());
    if (record->status == 0) return;
    const KernelErrorRecord seen = *record;
    std::memset(record, 0, sizeof(KernelErrorRecord));
    throw_backend_error(BackendErrorKind::kInvalidValue, "model_step",
                        detail::model_step_out_of_range(seen.token, seen.seq, seen.kv_count));
  }

  std::int32_t* element(const Slice& slice) const {
    return regions_[slice.buffer.slot].data + slice.offset;
  }

  // A block of `count` elements from a slab with room, or from a new slab.
  Region carve(std::int64_t count) {
    Region region;
    if (count == 0) return region;
    const std::int64_t bytes =
        round_up(count * static_cast<std::int64_t>(sizeof(std::int32_t)), kAlignBytes);
    for (std::size_t s = 0; s < slabs_.size(); ++s) {
      Slab& slab = *slabs_[s];
      for (auto it = slab.free_blocks.begin(); it != slab.free_blocks.end(); ++it) {
        if (it->second < bytes) continue;
        const std::int64_t offset = it->first;
        const std::int64_t left = it->second - bytes;
        slab.free_blocks.erase(it);
        if (left > 0) slab.free_blocks.emplace(offset + bytes, left);
        slab.used_end = std::max(slab.used_end, offset + bytes);
        region.slab = static_cast<std::int32_t>(s);
        region.offset = offset;
        region.bytes = bytes;
        region.data = reinterpret_cast<std::int32_t*>(slab.base() + offset);
        return region;
      }
    }
    auto slab = std::make_unique<Slab>();
    slab->bytes = std::max(kSlabBytesMin, bytes);
    slab->memory = device_alloc(slab->bytes);
    slab->free_blocks.emplace(0, slab->bytes);
    slabs_.push_back(std::move(slab));
    return carve(count);
  }

  void release(const Region& region) {
    if (region.slab < 0) return;
    Slab& slab = *slabs_[static_cast<std::size_t>(region.slab)];
    auto [it, inserted] = slab.free_blocks.emplace(region.offset, region.bytes);
    CAPCHECK_ASSERT(inserted);
    const auto next = std::next(it);
    if (next != slab.free_blocks.end() && it->first + it->second == next->first) {
      it->second += next->second;
      slab.free_blocks.erase(next);
    }
    if (it != slab.free_blocks.begin()) {
      const auto previous = std::prev(it);
      if (previous->first + previous->second == it->first) {
        previous->second += it->second;
        slab.free_blocks.erase(it);
      }
    }
  }

  // Scratch for an overlapping source grows only at allocation, never during
  // a capture (cudaMalloc is an unsafe call there). Old scratch stays alive
  // for the graphs that were captured against it.
  void ensure_stage_capacity(std::int64_t count) {
    if (count <= stage_capacity_) return;
    if (stage_) retired_stages_.push_back(std::move(stage_));
    stage_capacity_ = std::max<std::int64_t>(round_up(count, kAlignBytes), 2 * stage_capacity_);
    stage_ = device_alloc(stage_capacity_ * static_cast<std::int64_t>(sizeof(std::int32_t)));
  }

  // A copy of `slice` in scratch, for a source that overlaps its destination.
  const std::int32_t* staged(const Slice& slice) {
    CAPCHECK_ASSERT(slice.count <= stage_capacity_);
    auto* copy = static_cast<std::int32_t*>(stage_.get());
    CAPCHECK_CUDA_CHECK(cudaMemcpyAsync(copy, element(slice),
                                        static_cast<std::size_t>(slice.count) * sizeof(std::int32_t),
                                        cudaMemcpyDeviceToDevice, stream_raw_));
    ++captured_nodes_count_;
    return copy;
  }

  template <OpKind kKind>
  void launch_elementwise(const Op& op, const std::int32_t* src) {
    elementwise_kernel<kKind><<<blocks_for(op.dst.count), kThreadsPerBlock, 0, stream_raw_>>>(
        element(op.dst), src, op.dst.count, op.value);
    CAPCHECK_CUDA_CHECK_LAUNCH("elementwise_kernel");
  }

  // Issues `op` as its own kernel on the stream (recorded while capturing).
  void enqueue(const Op& op) {
    if (op.dst.count == 0) return;
    const std::int32_t* src = nullptr;
    if (op.kind != OpKind::kFill && op.kind != OpKind::kModelStep) {
      src = needs_staging(op) ? staged(op.src) : element(op.src);
    }
    switch (op.kind) {
      case OpKind::kAdd: launch_elementwise<OpKind::kAdd>(op, src); break;
      case OpKind::kSub: launch_elementwise<OpKind::kSub>(op, src); break;
      case OpKind::kCopy: launch_elementwise<OpKind::kCopy>(op, src); break;
      case OpKind::kFill: launch_elementwise<OpKind::kFill>(op, nullptr); break;
      case OpKind::kModelStep:
        model_step_kernel<<<1, kModelStepThreads, 0, stream_raw_>>>(
            element(op.dst), element(op.src), element(op.positions), element(op.seq_ids),
            element(op.kv_lens), op.dst.count, op.kv_lens.count, error_device_);
        CAPCHECK_CUDA_CHECK_LAUNCH("model_step_kernel");
        break;
    }
    ++captured_nodes_count_;
  }

  // Note [eager batching]: queues an eager op, or issues it alone when it is
  // too large for one block or must stage an overlapping source.
  void queue(const Op& op) {
    if (op.dst.count == 0) return;
    if (op.dst.count > kBatchElementsMax || op.kv_lens.count > kBatchElementsMax ||
        needs_staging(op)) {
      flush();
      enqueue(op);
      return;
    }
    BatchedOp queued{};
    queued.kind = op.kind;
    queued.dst = element(op.dst);
    queued.count = static_cast<std::int32_t>(op.dst.count);
    queued.value = op.value;
    queued.src = op.kind == OpKind::kFill ? nullptr : element(op.src);
    if (op.kind == OpKind::kModelStep) {
      queued.positions = element(op.positions);
      queued.seq_ids = element(op.seq_ids);
      queued.kv_lens = element(op.kv_lens);
      queued.kv_count = static_cast<std::int32_t>(op.kv_lens.count);
      // model_step_block has barriers of its own on both sides.
      end_wave();
      push(queued);
      end_wave();
      return;
    }
    const bool reads = op.kind != OpKind::kFill;
    if (conflicts(op.dst, true) || (reads && conflicts(op.src, false))) end_wave();
    wave_writes_.push_back(op.dst);
    if (reads) wave_reads_.push_back(op.src);
    push(queued);
  }

  // True when an access to `slice` (a write when `write`) depends on, or is
  // depended on by, an op of the current wave.
  bool conflicts(const Slice& slice, bool write) const {
    for (const Slice& w : wave_writes_) {
      if (overlaps(slice, w)) return true;
    }
    if (!write) return false;
    for (const Slice& r : wave_reads_) {
      if (overlaps(slice, r)) return true;
    }
    return false;
  }

  // The next queued op starts a new wave (a barrier after the last one).
  void end_wave() {
    if (batch_.count > 0) batch_.ops[batch_.count - 1].wave_end = true;
    wave_writes_.clear();
    wave_reads_.clear();
  }

  void push(const BatchedOp& op) {
    batch_.ops[batch_.count++] = op;
    if (batch_.count == kBatchOpsMax) flush();
  }

  // Issues what is staged and queued (Note [eager batching]): one host-to-
  // device copy of the staged upload bytes, then one kernel for the ops.
  void flush() {
    if (batch_.count == 0 && upload_flushed_ == upload_used_) return;
    Timer timer(*this, Call::kFlush);
    if (upload_used_ > upload_flushed_) {
      CAPCHECK_CUDA_CHECK(cudaMemcpyAsync(
          static_cast<char*>(upload_device_.get()) + upload_flushed_,
          static_cast<char*>(upload_staging_.get()) + upload_flushed_,
          static_cast<std::size_t>(upload_used_ - upload_flushed_), cudaMemcpyHostToDevice,
          stream_raw_));
      upload_flushed_ = upload_used_;
    }
    if (batch_.count == 0) return;
    batch_kernel<<<1, kBatchThreads, 0, stream_raw_>>>(batch_, error_device_);
    batch_.count = 0;  // dropped even if the launch failed: it is not retried
    wave_writes_.clear();
    wave_reads_.clear();
    CAPCHECK_CUDA_CHECK_LAUNCH("batch_kernel");
  }

  BackendOptions options_;
  StreamHandle stream_;                // null on the legacy stream
  cudaStream_t stream_raw_ = nullptr;  // what every call is issued to
  detail::BufferTable buffers_;
  std::vector<std::unique_ptr<Slab>> slabs_;
  std::vector<Region> regions_;     // by buffer slot
  std::uint64_t device_epoch_ = 1;  // bumped by every device write

  PinnedMemory upload_staging_;   // host side of staged uploads
  DeviceMemory upload_device_;    // device side, same layout (Note [eager batching])
  std::int64_t upload_staging_bytes_ = 0;
  std::int64_t upload_used_ = 0;     // staged bytes since the last synchronization
  std::int64_t upload_flushed_ = 0;  // of which already copied to upload_device_
  PinnedMemory download_staging_;
  std::int64_t download_staging_bytes_ = 0;
  PinnedMemory error_host_;
  KernelErrorRecord* error_device_ = nullptr;

  DeviceMemory stage_;
  std::int64_t stage_capacity_ = 0;  // elements
  std::vector<DeviceMemory> retired_stages_;

  bool batching_ = true;
  OpBatch batch_{};
  std::vector<Slice> wave_writes_;  // what the current wave writes and reads
  std::vector<Slice> wave_reads_;

  detail::CaptureModel capture_;  // Note [one capture model]
  std::int64_t captured_nodes_count_ = 0;
  // The executable graph of each live graph id; null when the capture
  // recorded no device node.
  std::unordered_map<std::uint32_t, GraphExecHandle> execs_;
  std::vector<GraphExecHandle> deferred_execs_;

  bool profiling_ = false;
  std::array<ProfileEntry, static_cast<std::size_t>(Call::kCount)> profile_{};
};

CudaBackend& as_cuda(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (cuda == nullptr) {
    throw UsageError("backend '" + std::string(backend.name()) +
                     "' is not a cuda backend made by make_cuda_backend");
  }
  return *cuda;
}


}  // namespace

bool cuda_device_available(std::string* why) {
  static const std::pair<bool, std::string> probe = [] {
    int count = 0;
    const cudaError_t error = cudaGetDeviceCount(&count);
    if (error != cudaSuccess) {
      (void)cudaGetLastError();
      return std::make_pair(false, "no CUDA device: " + cuda_detail::error_text(error));
    }
    if (count == 0) return std::make_pair(false, std::string("no CUDA device: none is visible"));
    return std::make_pair(true, std::string());
  }();
  if (why != nullptr) *why = probe.second;
  return probe.first;
}

std::string cuda_backend_description() {
  std::string why;
  if (!cuda_device_available(&why)) return why;
  int device = 0, runtime = 0, driver = 0;
  cudaDeviceProp properties{};
  CAPCHECK_CUDA_CHECK(cudaGetDevice(&device));
  CAPCHECK_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  CAPCHECK_CUDA_CHECK(cudaDriverGetVersion(&driver));
  CAPCHECK_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
  auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  return "CUDA runtime " + version(runtime) + ", driver " + version(driver) + ", " +
         properties.name + " (sm_" + std::to_string(properties.major) +
         std::to_string(properties.minor) + ")";
}

std::unique_ptr<Backend> make_cuda_backend(BackendOptions options) {
  return std::make_unique<CudaBackend>(options);
}

void cuda_backend_set_profiling(Backend& backend, bool enabled) {
  as_cuda(backend).set_profiling(enabled);
}

void cuda_backend_set_eager_batching(Backend& backend, bool enabled) {
  as_cuda(backend).set_eager_batching(enabled);
}

std::vector<CudaCallProfile> cuda_backend_profile(const Backend& backend) {
  return as_cuda(const_cast<Backend&>(backend)).profile();
}

}  // namespace capcheck
