#include "capcheck/detail/capture_model.h"

namespace capcheck::detail {

void CaptureModel::check_not_capturing(const char* call, const std::string& device_answer,
                                       SourceLocation where) {
  if (!capturing()) return;
  // CUDA: a synchronous call on a capturing stream fails with
  // cudaErrorStreamCaptureUnsupported and invalidates the capture.
  const std::string answer = state_ == CaptureState::kActive ? device_answer : std::string();
  state_ = CaptureState::kInvalidated;
  throw_backend_error(
      BackendErrorKind::kCaptureUnsupported, call,
      "a synchronizing call while the stream is capturing; the capture is now invalidated" + answer,
      where);
}

void CaptureModel::check_allocate(std::int64_t count, SourceLocation where) {
  // cudaMalloc is not permitted on a thread that is capturing (thread-local
  // capture mode): it fails and invalidates the capture. Subjects allocate up
  // front, as TensorRT-LLM's static buffers do.
  check_not_capturing("allocate", "", where);
  if (count < 0) {
    throw_backend_error(BackendErrorKind::kInvalidValue, "allocate", "negative element count",
                        where);
  }
}

bool CaptureModel::check_launch(const Op& op, SourceLocation where) {
  buffers_.check_op(op, where);
  switch (state_) {
    case CaptureState::kNone:
      return false;
    case CaptureState::kActive:
      return true;
    case CaptureState::kInvalidated:
      // CUDA keeps failing work on an invalidated capture until it is ended.
      throw_backend_error(BackendErrorKind::kCaptureInvalidated, op_kind_name(op.kind),
                          "launch on a stream whose capture was invalidated", where);
  }
  CAPCHECK_ASSERT(false && "unknown capture state");
  return false;
}

void CaptureModel::record(const Op& op) {
  CAPCHECK_ASSERT(state_ == CaptureState::kActive);
  capturing_ops_.push_back(RecordedOp{op, phase_});
}

void CaptureModel::check_begin(bool legacy_stream, const std::string& device_answer,
                               SourceLocation where) const {
  if (legacy_stream) {
    throw_backend_error(
        BackendErrorKind::kCaptureUnsupported, "begin_capture",
        "capture on the legacy default stream is not allowed; use a non-blocking stream" +
            device_answer,
        where);
  }
  if (capturing()) {
    throw_backend_error(BackendErrorKind::kIllegalState, "begin_capture",
                        "the stream is already capturing", where);
  }
}

void CaptureModel::begin() {
  CAPCHECK_ASSERT(state_ == CaptureState::kNone);
  state_ = CaptureState::kActive;
  capturing_ops_.clear();
}

void CaptureModel::check_end(SourceLocation where) const {
  if (!capturing()) {
    throw_backend_error(BackendErrorKind::kIllegalState, "end_capture",
                        "the stream is not capturing", where);
  }
}

Graph CaptureModel::finish_end(const std::string& device_answer, SourceLocation where) {
  CAPCHECK_ASSERT(capturing());
  const bool invalidated = state_ == CaptureState::kInvalidated;
  state_ = CaptureState::kNone;
  std::vector<RecordedOp> ops = std::move(capturing_ops_);
  capturing_ops_.clear();
  if (invalidated) {
    throw_backend_error(
        BackendErrorKind::kCaptureInvalidated, "end_capture",
        "the capture was invalidated by an illegal call; no graph was produced" + device_answer,
        where);
  }
  const Graph graph{next_graph_id_++};
  graphs_.emplace(graph.id, std::move(ops));
  return graph;
}

const std::vector<RecordedOp>& CaptureModel::check_replay(Graph graph, SourceLocation where) const {
  if (capturing()) {
    throw_backend_error(BackendErrorKind::kCaptureUnsupported, "replay",
                        "graph launch while capturing", where);
  }
  const auto it = graphs_.find(graph.id);
  if (it == graphs_.end()) {
    throw_backend_error(BackendErrorKind::kInvalidValue, "replay",
                        "not a live graph of this backend", where);
  }
  // A graph node that refers to freed memory must be reported, never replayed
  // against whatever reuses the slot (capture rule 5).
  for (const RecordedOp& recorded : it->second) buffers_.check_op(recorded.op, where);
  return it->second;
}

void CaptureModel::destroy(Graph graph, SourceLocation where) {
  if (graphs_.erase(graph.id) == 0) {
    throw_backend_error(BackendErrorKind::kInvalidValue, "destroy_graph",
                        "not a live graph of this backend", where);
  }
}

const std::vector<RecordedOp>* CaptureModel::recorded_ops(Graph graph) const {
  const auto it = graphs_.find(graph.id);
  return it == graphs_.end() ? nullptr : &it->second;
}

}  // namespace capcheck::detail
