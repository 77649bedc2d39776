// The recorded-capture model shared by every host backend (sim, torch on CPU).
// Note [record, not execute]: a device op issued while the stream captures is
// appended to the graph and does not run; memory is unchanged by a capture.
// Slices and fill values are copied into the graph at capture (host values are
// baked); buffer contents are read when the graph replays, so in-place updates
// accumulate across replays. Storage and arithmetic are left to the subclass:
// the capture rules live here once, not in a copy per backend.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "capcheck/backend.h"
#include "detail/buffer_table.h"

namespace capcheck::detail {

class RecordingBackend : public Backend {
 public:
  explicit RecordingBackend(BackendOptions options) : options_(options) {}

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
  bool capturing() const final { return capture_ != CaptureState::kNone; }

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
  enum class CaptureState { kNone, kActive, kInvalidated };

  void check_not_capturing(const char* call);

  BackendOptions options_;
  BufferTable buffers_;
  CaptureState capture_ = CaptureState::kNone;
  std::vector<Op> capturing_ops_;
  std::unordered_map<std::uint32_t, std::vector<Op>> graphs_;  // live graphs by id
  std::uint32_t next_graph_id_ = 1;
};

}  // namespace capcheck::detail
