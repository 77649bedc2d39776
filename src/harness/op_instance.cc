#include "op_instance.h"

#include <sstream>

#include "tracing_backend.h"

namespace capcheck::detail {

void OpInstance::observe(const Slice& slice, Observed& into) {
  into.type = ElementType::kInt32;
  into.bytes.resize(static_cast<std::size_t>(slice.count) * sizeof(std::int32_t));
  backend_.download(slice, reinterpret_cast<std::int32_t*>(into.bytes.data()));
}

void OpInstance::replay(Outputs& outputs) {
  outputs.resize(1);
  outputs[0].name = "logits";
  replayed_ = subject_->replay();
  observe(replayed_, outputs[0]);
}

bool OpInstance::hold_outputs() {
  held_ = replayed_;
  return true;
}

void OpInstance::held_outputs(Outputs& into) {
  into.resize(1);
  into[0].name = "logits";
  observe(held_, into[0]);
}

void OpInstance::forward_eager(Outputs& outputs) {
  outputs.resize(1);
  outputs[0].name = "logits";
  observe(subject_->forward_eager(), outputs[0]);
}

void OpInstance::snapshot(Snapshot& into) {
  const std::vector<NamedSlice>& buffers = subject_->persistent_buffers();
  into.resize(buffers.size());
  for (std::size_t b = 0; b < buffers.size(); ++b) {
    if (into[b].name != buffers[b].name) into[b].name = buffers[b].name;
    observe(buffers[b].slice, into[b]);
  }
}

void OpInstance::poison_static_inputs(std::int32_t pattern) {
  for (const NamedSlice& input : subject_->static_inputs()) backend_.fill(input.slice, pattern);
}

void OpInstance::start_trace() { backend_.record_into(&trace_); }

void OpInstance::stop_trace() {
  backend_.record_into(nullptr);
}

std::string OpInstance::explain_change(std::size_t buffer, std::int64_t index) {
  const NamedSlice& slice = subject_->persistent_buffers()[buffer];
  const std::int64_t element = slice.slice.offset + index;
  const auto writer = trace_.last_writer(slice.slice.buffer, element);
  if (!writer) return "";
  return "last write to " + slice.name + "[" + std::to_string(element) +
         "]: " + describe(backend_, *writer);
}

// The (input_id, position_id, kv_len) the last model step of the trace read
// for output `index`: the buffers' values now, rewound through the ops that
// ran after the step (the draft loop moves kv_lens after the forward read it).
std::string OpInstance::explain_output(std::size_t output, std::int64_t index) {
  (void)output;  // one output: the logits
  const auto step = trace_.last_model_step();
  if (!step) return "token " + std::to_string(index) + ": no model step was traced";
  const TraceEntry& entry = trace_.entries()[*step];
  const Op& op = entry.op;
  auto now = [&](Buffer buffer, std::int64_t element) {
    std::int32_t value = 0;
    backend_.download(Slice{buffer, element, 1}, &value);
    return value;
  };
  auto read = [&](Slice s, std::int64_t i) { return trace_.value_before(*step, s.buffer, s.offset + i, now); };
  auto text = [](std::optional<std::int32_t> v) {
    return v ? std::to_string(*v) : std::string("? (overwritten since)");
  };
  const auto seq = read(op.seq_ids, index);
  std::ostringstream out;
  out << "token " << index << " with input_id=" << text(read(op.src, index))
      << " position_id=" << text(read(op.positions, index))
      << " kv_len=" << (seq ? text(read(op.kv_lens, *seq)) : text(std::nullopt)) << " (sequence "
      << text(seq) << ", " << trace_mode_name(entry.mode) << ")";
  return out.str();
}

}  // namespace capcheck::detail
