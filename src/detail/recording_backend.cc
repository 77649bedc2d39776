#include "detail/recording_backend.h"

#include "capcheck/errors.h"

namespace capcheck::detail {

namespace {
[[noreturn]] void fail(BackendErrorKind kind, const char* call, const std::string& message) {
  throw BackendError(kind, call, message, __FILE__, __LINE__);
}
}  // namespace

Buffer RecordingBackend::allocate(std::string_view label, std::int64_t count) {
  // cudaMalloc is not permitted on a thread that is capturing (thread-local
  // capture mode): it fails and invalidates the capture. Subjects allocate up
  // front, as TensorRT-LLM's static buffers do.
  check_not_capturing("allocate");
  if (count < 0) fail(BackendErrorKind::kInvalidValue, "allocate", "negative element count");
  const Buffer buffer = buffers_.add(label, count);
  storage_allocate(buffer.slot, count);
  return buffer;
}

void RecordingBackend::free(Buffer buffer) {
  check_not_capturing("free");  // cudaFree synchronizes: illegal while capturing
  buffers_.check_live(buffer, "free");
  storage_free(buffer.slot);
  buffers_.remove(buffer);
}

std::string RecordingBackend::label(Buffer buffer) const { return buffers_.label(buffer); }

std::size_t RecordingBackend::live_buffers_count() const { return buffers_.live_count(); }

void RecordingBackend::check_not_capturing(const char* call) {
  if (!capturing()) return;
  // CUDA: a synchronous call on a capturing stream fails with
  // cudaErrorStreamCaptureUnsupported and invalidates the capture.
  capture_ = CaptureState::kInvalidated;
  fail(BackendErrorKind::kCaptureUnsupported, call,
       "a synchronizing call while the stream is capturing; the capture is now invalidated");
}

void RecordingBackend::upload(Slice dst, const std::int32_t* src) {
  check_not_capturing("upload");
  buffers_.check_slice(dst, "upload", "destination");
  if (dst.count > 0) storage_upload(dst, src);
}

void RecordingBackend::download(Slice src, std::int32_t* dst) {
  check_not_capturing("download");
  buffers_.check_slice(src, "download", "source");
  if (src.count > 0) storage_download(src, dst);
}

void RecordingBackend::synchronize() { check_not_capturing("synchronize"); }

void RecordingBackend::launch(const Op& op) {
  buffers_.check_op(op);
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
  for (const Op& op : ops) buffers_.check_op(op);
  for (const Op& op : ops) execute(op);
}

void RecordingBackend::destroy_graph(Graph graph) {
  if (graphs_.erase(graph.id) == 0) {
    fail(BackendErrorKind::kInvalidValue, "destroy_graph", "not a live graph of this backend");
  }
}

}  // namespace capcheck::detail
