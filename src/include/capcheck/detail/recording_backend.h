// The host backends' shared base (sim, torch on the CPU): capture follows the
// capture model (Note [one capture model]) with nothing to ask of a driver.
// Note [record, not execute]: a device op issued while the stream captures is
// appended to the graph and does not run; memory is unchanged by a capture.
// Slices and fill values are copied into the graph at capture (host values are
// baked); buffer contents are read when the graph replays, so in-place updates
// accumulate across replays. Storage and arithmetic are left to the subclass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/detail/buffer_table.h"
#include "capcheck/detail/capture_model.h"

namespace capcheck::detail {

class RecordingBackend : public Backend {
 public:
  explicit RecordingBackend(BackendOptions options) : options_(options), capture_(buffers_) {}

  Buffer allocate(std::string_view label, std::int64_t count) final;
  void free(Buffer buffer) final;
  std::string label(Buffer buffer) const final;
  void upload(Slice dst, const std::int32_t* src) final;
  void download(Slice src, std::int32_t* dst) final;
  void launch(const Op& op) final;
  void begin_capture() final;
  Graph end_capture() final;
  void replay(Graph graph) final;
  void destroy_graph(Graph graph) final;
  void synchronize() final;
  bool capturing() const final { return capture_.capturing(); }
  const std::vector<RecordedOp>* recorded_ops(Graph graph) const final {
    return capture_.recorded_ops(graph);
  }
  void annotate(const char* phase) final { capture_.annotate(phase); }

  /// Buffers allocated and not freed.
  std::size_t live_buffers_count() const;

 protected:
  // Storage primitives: called only with checked, live, in-bounds slices.
  virtual void storage_allocate(std::uint32_t slot, std::int64_t count) = 0;
  virtual void storage_free(std::uint32_t slot) = 0;
  virtual void storage_upload(const Slice& dst, const std::int32_t* src) = 0;
  virtual void storage_download(const Slice& src, std::int32_t* dst) = 0;
  virtual void execute(const Op& op) = 0;

 private:
  BackendOptions options_;
  BufferTable buffers_;
  CaptureModel capture_;
};

}  // namespace capcheck::detail
