// A record of the device work issued during a window of a property, used to
// name the operation that broke an invariant.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "capcheck/backend.h"

namespace capcheck {

/// How a traced op touched memory.
enum class TraceMode : std::uint8_t {
  kExecuted,  // ran eagerly on the stream
  kRecorded,  // appended to a graph under capture; did not run
  kReplayed,  // ran as part of a graph replay
  kUploaded,  // host-to-device copy
};

/// Returns "executed eagerly", "recorded, not executed", "replayed", "uploaded".
const char* trace_mode_name(TraceMode mode);

struct TraceEntry {
  const char* phase = "";
  TraceMode mode = TraceMode::kExecuted;
  Op op;  // for uploads: kind kCopy with only dst set
};

/// The traced ops of one window, oldest first.
class Trace {
 public:
  void clear() { entries_.clear(); }
  void push(const TraceEntry& entry) { entries_.push_back(entry); }
  const std::vector<TraceEntry>& entries() const { return entries_; }

  /// The last entry that wrote `buffer[index]` (executed, replayed or uploaded).
  std::optional<TraceEntry> last_writer(Buffer buffer, std::int64_t index) const;
  /// The last model_step that ran (executed or replayed).
  std::optional<TraceEntry> last_model_step() const;

 private:
  std::vector<TraceEntry> entries_;
};

/// "postprocess after capture: sub kv_lens_cuda[1:4] -= ... (executed eagerly)".
std::string describe(const Backend& backend, const TraceEntry& entry);

}  // namespace capcheck
