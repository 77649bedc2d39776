// The capture model: the one owner of the CUDA stream-capture rules that every
// backend obeys (docs/capture-rules.md).
//
// Note [one capture model]: a backend's capture has three states, none, active
// and invalidated. The model owns that state, the ops recorded by the capture
// in progress and by every live graph, and every rule with its message:
//   - a synchronizing call (upload, download, synchronize, allocate, free)
//     while capturing is refused (900) and invalidates the capture;
//   - a launch on an invalidated capture fails (901) until the capture ends;
//   - begin on the legacy stream (900), begin while capturing (401), end
//     without begin (401), end of an invalidated capture (901, no graph);
//   - replay while capturing (900, the capture stays valid), replay or
//     destroy of a graph that is not live (1), and at replay a recorded op on a
//     freed or reallocated buffer (dangling, rule 5): reported, never run.
// Backends keep only what their device needs: storage and kernels, and, on a
// GPU, the "ask the driver" hooks (Note [capture state on the host]) whose
// answers the model appends to its messages, so a test sees that the real
// driver agrees with the model. The tracing front reads the recorded ops from
// here (Backend::recorded_ops) instead of keeping lists of its own.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/detail/buffer_table.h"
#include "capcheck/errors.h"

namespace capcheck::detail {

/// The capture state of one stream.
enum class CaptureState : std::uint8_t { kNone, kActive, kInvalidated };

class CaptureModel {
 public:
  /// `buffers` is the owning backend's table; it checks every op's slices.
  explicit CaptureModel(const BufferTable& buffers) : buffers_(buffers) {}

  CaptureState state() const { return state_; }
  bool capturing() const { return state_ != CaptureState::kNone; }

  /// The phase recorded with later ops (Backend::annotate).
  void annotate(const char* phase) { phase_ = phase; }

  /// Rule 4: `call` synchronizes with the stream. Outside capture it returns;
  /// during one it invalidates the capture and throws kCaptureUnsupported.
  /// `device_answer` (a GPU's confirmation) is appended while the capture was
  /// still active.
  void check_not_capturing(const char* call, const std::string& device_answer = "",
                           SourceLocation where = SourceLocation::current());
  /// True when a `check_not_capturing` would throw; a GPU backend asks its
  /// driver first only then.
  bool capture_active() const { return state_ == CaptureState::kActive; }

  /// allocate(): not while capturing, and a count of at least zero.
  void check_allocate(std::int64_t count, SourceLocation where = SourceLocation::current());

  /// Before a launch: the op's slices are checked; returns true when the op is
  /// to be recorded (a capture is active), false when it runs eagerly, and
  /// throws kCaptureInvalidated on an invalidated capture.
  bool check_launch(const Op& op, SourceLocation where = SourceLocation::current());
  /// Appends `op` to the capture in progress (after the device accepted it).
  void record(const Op& op);
  /// A device failure during a captured launch: the real capture may be broken.
  void invalidate() { state_ = CaptureState::kInvalidated; }

  /// begin_capture(): refuses the legacy stream (with the device's answer)
  /// and a stream already capturing.
  void check_begin(bool legacy_stream, const std::string& device_answer = "",
                   SourceLocation where = SourceLocation::current()) const;
  /// The capture is open (after the device began it).
  void begin();

  /// end_capture(): kIllegalState when not capturing. Otherwise the capture
  /// is over (state none) and the caller ends the device's capture, then calls
  /// finish_end().
  void check_end(SourceLocation where = SourceLocation::current()) const;
  /// Whether the capture that check_end() accepted was invalidated.
  bool ending_invalidated() const { return state_ == CaptureState::kInvalidated; }
  /// Completes end_capture(): throws kCaptureInvalidated (no graph) for an
  /// invalidated capture, with the device's answer appended; otherwise
  /// registers the recorded ops as a new live graph and returns it.
  Graph finish_end(const std::string& device_answer = "",
                   SourceLocation where = SourceLocation::current());

  /// replay(): not while capturing, a live graph, and every recorded op on
  /// live buffers (rule 5). Returns the graph's ops.
  const std::vector<RecordedOp>& check_replay(Graph graph,
                                              SourceLocation where = SourceLocation::current()) const;
  /// destroy_graph(): forgets a live graph; kInvalidValue otherwise.
  void destroy(Graph graph, SourceLocation where = SourceLocation::current());

  /// The ops a live graph recorded, oldest first; null when not live.
  const std::vector<RecordedOp>* recorded_ops(Graph graph) const;
  /// Live graphs.
  std::size_t graphs_count() const { return graphs_.size(); }

 private:
  const BufferTable& buffers_;
  CaptureState state_ = CaptureState::kNone;
  const char* phase_ = "";
  std::vector<RecordedOp> capturing_ops_;
  std::unordered_map<std::uint32_t, std::vector<RecordedOp>> graphs_;  // live graphs by id
  std::uint32_t next_graph_id_ = 1;
};

}  // namespace capcheck::detail
