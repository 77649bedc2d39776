// Buffer bookkeeping shared by every backend: slots with generations (so a
// freed or reallocated buffer is detected), labels for reports, and the
// argument checks of every op. Backends differ in storage, not in these rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/errors.h"

namespace capcheck::detail {

/// The message of a model_step whose sequence id `seq` (of token `token`) is
/// outside kv_lens of `kv_count` elements, the same on every backend.
std::string model_step_out_of_range(std::int64_t token, std::int64_t seq, std::int64_t kv_count);

class BufferTable {
 public:
  /// Registers a buffer of `count` elements; returns its handle.
  Buffer add(std::string_view label, std::int64_t count);
  /// Marks the buffer freed (after check_live).
  void remove(Buffer buffer);
  std::string label(Buffer buffer) const;
  std::size_t live_count() const;

  /// Throws BackendError kDanglingBuffer / kInvalidValue.
  /// Each records its caller's file and line in the error.
  void check_live(const Buffer& buffer, const char* call,
                  SourceLocation where = SourceLocation::current()) const;
  void check_slice(const Slice& slice, const char* call, const char* role,
                   SourceLocation where = SourceLocation::current()) const;
  /// Every slice of `op` live, in bounds, and of matching lengths.
  void check_op(const Op& op, SourceLocation where = SourceLocation::current()) const;

 private:
  struct SlotInfo {
    std::uint32_t generation = 0;
    bool live = false;
    std::int64_t size = 0;
    std::string label;
    // The buffer the slot held before (a dangling handle is reported by its
    // own name, not by the name of what reuses the slot).
    std::uint32_t previous_generation = 0;
    std::string previous_label;
  };
  std::vector<SlotInfo> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::uint32_t next_generation_ = 1;
};

}  // namespace capcheck::detail
