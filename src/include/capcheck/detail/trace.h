// A record of the device work issued during a window of a property, used to
// name the operation that broke an invariant.
#pragma once

#include <cstddef>
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
  /// The index of the last model_step that ran (executed or replayed).
  std::optional<std::size_t> last_model_step() const;
  /// What buffer[index] held just before entry `at` ran, from `now` (its value
  /// after the whole window): every later write is undone, an add or sub by
  /// its source (itself rewound). nullopt where a later write cannot be undone
  /// (a copy, fill, upload or model step, or an add of an element to itself).
  /// `now(buffer, index)` reads the current value.
  template <typename Read>
  std::optional<std::int32_t> value_before(std::size_t at, Buffer buffer, std::int64_t index,
                                           const Read& now) const;

 private:
  static bool writes(const TraceEntry& entry, Buffer buffer, std::int64_t index) {
    const Slice& dst = entry.op.dst;
    return entry.mode != TraceMode::kRecorded && dst.buffer == buffer && index >= dst.offset &&
           index < dst.offset + dst.count;
  }

  std::vector<TraceEntry> entries_;
};

template <typename Read>
std::optional<std::int32_t> Trace::value_before(std::size_t at, Buffer buffer, std::int64_t index,
                                                const Read& now) const {
  std::size_t writer = entries_.size();  // the first entry at or after `at` that wrote it
  for (std::size_t k = at; k < entries_.size(); ++k) {
    if (writes(entries_[k], buffer, index)) {
      writer = k;
      break;
    }
  }
  if (writer == entries_.size()) return now(buffer, index);
  const Op& op = entries_[writer].op;
  if (entries_[writer].mode == TraceMode::kUploaded ||
      (op.kind != OpKind::kAdd && op.kind != OpKind::kSub)) {
    return std::nullopt;
  }
  const std::int64_t source = op.src.offset + (index - op.dst.offset);
  if (op.src.buffer == buffer && source == index) return std::nullopt;
  const auto after = value_before(writer + 1, buffer, index, now);
  const auto read = value_before(writer, op.src.buffer, source, now);
  if (!after || !read) return std::nullopt;
  // Wrapping arithmetic, as the backends compute.
  const std::uint32_t a = static_cast<std::uint32_t>(*after);
  const std::uint32_t r = static_cast<std::uint32_t>(*read);
  return static_cast<std::int32_t>(op.kind == OpKind::kAdd ? a - r : a + r);
}

/// "postprocess after capture: sub kv_lens_cuda[1:4] -= ... (executed eagerly)".
std::string describe(const Backend& backend, const TraceEntry& entry);

}  // namespace capcheck
