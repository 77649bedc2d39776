#include "detail/recording_backend.h"

#include "capcheck/errors.h"

namespace capcheck::detail {

namespace {
[[noreturn]] void fail(BackendErrorKind kind, const char* call, const std::string& message) {
  throw BackendError(kind, call, message, __FILE__, __LINE__);
}
}  // namespace

Buffer RecordingBackend::allocate(std::string_view label, std::int64_t count) {
  if (capturing()) {
    // Allocation inside capture would come from the graph's private pool; the
    // subjects here allocate up front, as TensorRT-LLM's static buffers do.
    fail(BackendErrorKind::kCaptureUnsupported, "allocate",
         "allocation during stream capture is not supported by this backend");
  }
  if (count < 0) fail(BackendErrorKind::kInvalidValue, "allocate", "negative element count");
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  SlotInfo& info = slots_[slot];
  info.generation = next_generation_++;
  info.live = true;
  info.size = count;
  info.label = std::string(label);
  storage_allocate(slot, count);
  return Buffer{slot, info.generation, count};
}

void RecordingBackend::free(Buffer buffer) {
  check_live(buffer, "free");
  storage_free(buffer.slot);
  slots_[buffer.slot].live = false;
  free_slots_.push_back(buffer.slot);
}

std::string RecordingBackend::label(Buffer buffer) const {
  if (buffer.slot >= slots_.size()) return "<unknown buffer>";
  const SlotInfo& info = slots_[buffer.slot];
  if (!info.live || info.generation != buffer.generation) return info.label + " (freed)";
  return info.label;
}

std::size_t RecordingBackend::live_buffers_count() const {
  std::size_t count = 0;
  for (const auto& info : slots_) count += info.live ? 1 : 0;
  return count;
}

void RecordingBackend::check_live(const Buffer& buffer, const char* call) const {
  if (buffer.slot >= slots_.size() || !buffer.valid()) {
    fail(BackendErrorKind::kInvalidValue, call, "not a buffer of this backend");
  }
  const SlotInfo& info = slots_[buffer.slot];
  if (!info.live || info.generation != buffer.generation) {
    fail(BackendErrorKind::kDanglingBuffer, call,
         "buffer '" + info.label + "' was freed or reallocated");
  }
}

void RecordingBackend::check_slice(const Slice& slice, const char* call, const char* role) const {
  check_live(slice.buffer, call);
  const std::int64_t size = slots_[slice.buffer.slot].size;
  if (slice.offset < 0 || slice.count < 0 || slice.offset + slice.count > size) {
    fail(BackendErrorKind::kInvalidValue, call,
         std::string(role) + " slice [" + std::to_string(slice.offset) + ":" +
             std::to_string(slice.offset + slice.count) + "] is outside buffer '" +
             slots_[slice.buffer.slot].label + "' of " + std::to_string(size) + " elements");
  }
}

void RecordingBackend::check_op(const Op& op) const {
  const char* call = op_kind_name(op.kind);
  check_slice(op.dst, call, "destination");
  switch (op.kind) {
    case OpKind::kFill:
      return;
    case OpKind::kAdd:
    case OpKind::kSub:
    case OpKind::kCopy:
      check_slice(op.src, call, "source");
      if (op.src.count != op.dst.count) {
        fail(BackendErrorKind::kInvalidValue, call, "source and destination lengths differ");
      }
      return;
    case OpKind::kModelStep:
      check_slice(op.src, call, "input_ids");
      check_slice(op.positions, call, "position_ids");
      check_slice(op.seq_ids, call, "seq_ids");
      check_slice(op.kv_lens, call, "kv_lens");
      if (op.src.count != op.dst.count || op.positions.count != op.dst.count ||
          op.seq_ids.count != op.dst.count) {
        fail(BackendErrorKind::kInvalidValue, call, "per-token slices differ in length");
      }
      return;
  }
  fail(BackendErrorKind::kInvalidValue, call, "unknown op kind");
}

void RecordingBackend::check_not_capturing(const char* call) {
  if (!capturing()) return;
  // CUDA: a synchronous call on a capturing stream fails with
  // cudaErrorStreamCaptureUnsupported and invalidates the capture.
  capture_ = CaptureState::kInvalidated;
  fail(BackendErrorKind::kCaptureUnsupported, call,
       "device-to-host synchronization while the stream is capturing; the capture is now "
       "invalidated");
}

void RecordingBackend::upload(Slice dst, const std::int32_t* src) {
  check_not_capturing("upload");
  check_slice(dst, "upload", "destination");
  if (dst.count > 0) storage_upload(dst, src);
}

void RecordingBackend::download(Slice src, std::int32_t* dst) {
  check_not_capturing("download");
  check_slice(src, "download", "source");
  if (src.count > 0) storage_download(src, dst);
}

void RecordingBackend::synchronize() { check_not_capturing("synchronize"); }

void RecordingBackend::launch(const Op& op) {
  check_op(op);
  switch (capture_) {
    case CaptureState::kNone:
      execute(op);
      return;
    case CaptureState::kActive:
      capturing_ops_.push_back(op);
      return;
    case CaptureState::kInvalidated:
      // CUDA keeps failing work on an invalidated capture until it is ended.
      fail(BackendErrorKind::kCaptureInvalidated, op_kind_name(op.kind),
           "launch on a stream whose capture was invalidated");
  }
}

void RecordingBackend::begin_capture() {
  if (options_.legacy_stream) {
    fail(BackendErrorKind::kCaptureUnsupported, "begin_capture",
         "capture on the legacy default stream is not allowed; use a non-blocking stream");
  }
  if (capturing()) {
    fail(BackendErrorKind::kIllegalState, "begin_capture", "the stream is already capturing");
  }
  capture_ = CaptureState::kActive;
  capturing_ops_.clear();
}

Graph RecordingBackend::end_capture() {
  if (capture_ == CaptureState::kNone) {
    fail(BackendErrorKind::kIllegalState, "end_capture", "the stream is not capturing");
  }
  const bool invalidated = capture_ == CaptureState::kInvalidated;
  capture_ = CaptureState::kNone;
  if (invalidated) {
    capturing_ops_.clear();
    fail(BackendErrorKind::kCaptureInvalidated, "end_capture",
         "the capture was invalidated by an illegal call; no graph was produced");
  }
  const Graph graph{next_graph_id_++};
  graphs_.emplace(graph.id, std::move(capturing_ops_));
  capturing_ops_.clear();
  return graph;
}

void RecordingBackend::replay(Graph graph) {
  if (capturing()) {
    fail(BackendErrorKind::kCaptureUnsupported, "replay", "graph launch while capturing");
  }
  const auto it = graphs_.find(graph.id);
  if (it == graphs_.end()) {
    fail(BackendErrorKind::kInvalidValue, "replay", "not a live graph of this backend");
  }
  const auto& ops = it->second;
  // A graph node that refers to freed memory must be reported, never replayed
  // against whatever reuses the slot (capture rule 5).
  for (const Op& op : ops) check_op(op);
  for (const Op& op : ops) execute(op);
}

void RecordingBackend::destroy_graph(Graph graph) {
  if (graphs_.erase(graph.id) == 0) {
    fail(BackendErrorKind::kInvalidValue, "destroy_graph", "not a live graph of this backend");
  }
}

}  // namespace capcheck::detail
