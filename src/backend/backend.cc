#include "capcheck/backend.h"

#include <string>

namespace capcheck {

const char* op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::kAdd: return "add";
    case OpKind::kSub: return "sub";
    case OpKind::kCopy: return "copy";
    case OpKind::kFill: return "fill";
    case OpKind::kModelStep: return "model_step";
  }
  return "unknown";
}

namespace {
std::string slice_text(const Backend& backend, const Slice& slice) {
  return backend.label(slice.buffer) + "[" + std::to_string(slice.offset) + ":" +
         std::to_string(slice.offset + slice.count) + "]";
}
}  // namespace

std::vector<std::int32_t> read(Backend& backend, Slice slice) {
  std::vector<std::int32_t> values(static_cast<std::size_t>(slice.count));
  backend.download(slice, values.data());
  return values;
}

std::string describe(const Backend& backend, const Op& op) {
  const std::string dst = slice_text(backend, op.dst);
  switch (op.kind) {
    case OpKind::kAdd: return "add " + dst + " += " + slice_text(backend, op.src);
    case OpKind::kSub: return "sub " + dst + " -= " + slice_text(backend, op.src);
    case OpKind::kCopy: return "copy " + dst + " = " + slice_text(backend, op.src);
    case OpKind::kFill: return "fill " + dst + " = " + std::to_string(op.value);
    case OpKind::kModelStep:
      return "model_step " + dst + " = mix(" + slice_text(backend, op.src) + ", " +
             slice_text(backend, op.positions) + ", " + backend.label(op.kv_lens.buffer) + "[" +
             slice_text(backend, op.seq_ids) + "])";
  }
  return "unknown op";
}

}  // namespace capcheck
