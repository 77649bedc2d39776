#include "capcheck/detail/recording_backend.h"

namespace capcheck::detail {

Buffer RecordingBackend::allocate(std::string_view label, std::int64_t count) {
  capture_.check_allocate(count);
  const Buffer buffer = buffers_.add(label, count);
  storage_allocate(buffer.slot, count);
  return buffer;
}

void RecordingBackend::free(Buffer buffer) {
  capture_.check_not_capturing("free");  // cudaFree synchronizes: illegal while capturing
  buffers_.check_live(buffer, "free");
  storage_free(buffer.slot);
  buffers_.remove(buffer);
}

std::string RecordingBackend::label(Buffer buffer) const { return buffers_.label(buffer); }

std::size_t RecordingBackend::live_buffers_count() const { return buffers_.live_count(); }

void RecordingBackend::upload(Slice dst, const std::int32_t* src) {
  capture_.check_not_capturing("upload");
  buffers_.check_slice(dst, "upload", "destination");
  if (dst.count > 0) storage_upload(dst, src);
}

void RecordingBackend::download(Slice src, std::int32_t* dst) {
  capture_.check_not_capturing("download");
  buffers_.check_slice(src, "download", "source");
  if (src.count > 0) storage_download(src, dst);
}

void RecordingBackend::synchronize() { capture_.check_not_capturing("synchronize"); }

void RecordingBackend::launch(const Op& op) {
  if (capture_.check_launch(op)) {
    capture_.record(op);  // Note [record, not execute]
  } else {
    execute(op);
  }
}

void RecordingBackend::begin_capture() {
  capture_.check_begin(options_.legacy_stream);
  capture_.begin();
}

Graph RecordingBackend::end_capture() {
  capture_.check_end();
  return capture_.finish_end();
}

void RecordingBackend::replay(Graph graph) {
  for (const RecordedOp& recorded : capture_.check_replay(graph)) execute(recorded.op);
}

void RecordingBackend::destroy_graph(Graph graph) { capture_.destroy(graph); }

}  // namespace capcheck::detail
