#include "capcheck/detail/buffer_table.h"

#include "capcheck/errors.h"

namespace capcheck::detail {

std::string model_step_out_of_range(std::int64_t token, std::int64_t seq, std::int64_t kv_count) {
  return "seq_ids[" + std::to_string(token) + "] = " + std::to_string(seq) +
         " is outside kv_lens of " + std::to_string(kv_count);
}

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
  if (info.generation != 0) {
    info.previous_generation = info.generation;
    info.previous_label = std::move(info.label);
  }
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
  if (buffer.generation == info.previous_generation) return info.previous_label + " (freed)";
  if (!info.live || info.generation != buffer.generation) return info.label + " (freed)";
  return info.label;
}

std::size_t BufferTable::live_count() const {
  std::size_t count = 0;
  for (const auto& info : slots_) count += info.live ? 1 : 0;
  return count;
}

void BufferTable::check_live(const Buffer& buffer, const char* call, SourceLocation where) const {
  if (buffer.slot >= slots_.size() || !buffer.valid()) {
    throw_backend_error(BackendErrorKind::kInvalidValue, call, "not a buffer of this backend", where);
  }
  const SlotInfo& info = slots_[buffer.slot];
  if (!info.live || info.generation != buffer.generation) {
    const std::string& label = buffer.generation == info.generation            ? info.label
                               : buffer.generation == info.previous_generation ? info.previous_label
                                                                               : std::string();
    throw_backend_error(BackendErrorKind::kDanglingBuffer, call,
                        (label.empty() ? std::string("a buffer") : "buffer '" + label + "'") +
                            " was freed or reallocated",
                        where);
  }
}

void BufferTable::check_slice(const Slice& slice, const char* call, const char* role,
                              SourceLocation where) const {
  check_live(slice.buffer, call, where);
  const std::int64_t size = slots_[slice.buffer.slot].size;
  if (slice.offset < 0 || slice.count < 0 || slice.offset > size || slice.count > size - slice.offset) {
    throw_backend_error(BackendErrorKind::kInvalidValue, call,
         std::string(role) + " slice [" + std::to_string(slice.offset) + ":" +
             std::to_string(slice.offset + slice.count) + "] is outside buffer '" +
             slots_[slice.buffer.slot].label + "' of " + std::to_string(size) + " elements", where);
  }
}

void BufferTable::check_op(const Op& op, SourceLocation where) const {
  const char* call = op_kind_name(op.kind);
  check_slice(op.dst, call, "destination", where);
  switch (op.kind) {
    case OpKind::kFill:
      return;
    case OpKind::kAdd:
    case OpKind::kSub:
    case OpKind::kCopy:
      check_slice(op.src, call, "source", where);
      if (op.src.count != op.dst.count) {
        throw_backend_error(BackendErrorKind::kInvalidValue, call, "source and destination lengths differ", where);
      }
      return;
    case OpKind::kModelStep:
      check_slice(op.src, call, "input_ids", where);
      check_slice(op.positions, call, "position_ids", where);
      check_slice(op.seq_ids, call, "seq_ids", where);
      check_slice(op.kv_lens, call, "kv_lens", where);
      if (op.src.count != op.dst.count || op.positions.count != op.dst.count ||
          op.seq_ids.count != op.dst.count) {
        throw_backend_error(BackendErrorKind::kInvalidValue, call, "per-token slices differ in length", where);
      }
      // On a GPU an output that overlaps an input is a data race between threads.
      for (const Slice* input : {&op.src, &op.positions, &op.seq_ids, &op.kv_lens}) {
        if (overlaps(op.dst, *input)) {
          throw_backend_error(BackendErrorKind::kInvalidValue, call,
               "the output overlaps an input (a data race on a GPU)", where);
        }
      }
      return;
  }
  throw_backend_error(BackendErrorKind::kInvalidValue, call, "unknown op kind", where);
}

}  // namespace capcheck::detail
