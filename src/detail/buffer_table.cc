#include "detail/buffer_table.h"

#include "capcheck/errors.h"

namespace capcheck::detail {

namespace {
[[noreturn]] void fail(BackendErrorKind kind, const char* call, const std::string& message) {
  throw BackendError(kind, call, message, __FILE__, __LINE__);
}
bool overlaps(const Slice& a, const Slice& b) {
  return a.buffer == b.buffer && a.count > 0 && b.count > 0 && a.offset < b.offset + b.count &&
         b.offset < a.offset + a.count;
}

}  // namespace

Buffer BufferTable::add(std::string_view label, std::int64_t count) {
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
  return Buffer{slot, info.generation, count};
}

void BufferTable::remove(Buffer buffer) {
  check_live(buffer, "free");
  slots_[buffer.slot].live = false;
  free_slots_.push_back(buffer.slot);
}

std::string BufferTable::label(Buffer buffer) const {
  if (buffer.slot >= slots_.size()) return "<unknown buffer>";
  const SlotInfo& info = slots_[buffer.slot];
  if (!info.live || info.generation != buffer.generation) return info.label + " (freed)";
  return info.label;
}

std::size_t BufferTable::live_count() const {
  std::size_t count = 0;
  for (const auto& info : slots_) count += info.live ? 1 : 0;
  return count;
}

void BufferTable::check_live(const Buffer& buffer, const char* call) const {
  if (buffer.slot >= slots_.size() || !buffer.valid()) {
    fail(BackendErrorKind::kInvalidValue, call, "not a buffer of this backend");
  }
  const SlotInfo& info = slots_[buffer.slot];
  if (!info.live || info.generation != buffer.generation) {
    fail(BackendErrorKind::kDanglingBuffer, call,
         "buffer '" + info.label + "' was freed or reallocated");
  }
}

void BufferTable::check_slice(const Slice& slice, const char* call, const char* role) const {
  check_live(slice.buffer, call);
  const std::int64_t size = slots_[slice.buffer.slot].size;
  if (slice.offset < 0 || slice.count < 0 || slice.offset > size || slice.count > size - slice.offset) {
    fail(BackendErrorKind::kInvalidValue, call,
         std::string(role) + " slice [" + std::to_string(slice.offset) + ":" +
             std::to_string(slice.offset + slice.count) + "] is outside buffer '" +
             slots_[slice.buffer.slot].label + "' of " + std::to_string(size) + " elements");
  }
}

void BufferTable::check_op(const Op& op) const {
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
      // On a GPU an output that overlaps an input is a data race between threads.
      for (const Slice* input : {&op.src, &op.positions, &op.seq_ids, &op.kv_lens}) {
        if (overlaps(op.dst, *input)) {
          fail(BackendErrorKind::kInvalidValue, call,
               "the output overlaps an input (a data race on a GPU)");
        }
      }
      return;
  }
  fail(BackendErrorKind::kInvalidValue, call, "unknown op kind");
}

}  // namespace capcheck::detail
