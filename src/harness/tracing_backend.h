// The tracing front of the harness: forwards every call to the real backend
// and, while enabled, appends what it sees to a Trace. A replay is expanded
// into the ops the capture model recorded for the graph.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/detail/trace.h"
#include "capcheck/errors.h"

namespace capcheck::detail {

class TracingBackend final : public Backend {
 public:
  explicit TracingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  std::string_view name() const override { return inner_->name(); }
  Buffer allocate(std::string_view label, std::int64_t count) override {
    return inner_->allocate(label, count);
  }
  void free(Buffer buffer) override { inner_->free(buffer); }
  std::string label(Buffer buffer) const override { return inner_->label(buffer); }
  void upload(Slice dst, const std::int32_t* src) override {
    inner_->upload(dst, src);
    if (enabled_) trace_.push(TraceEntry{phase_, TraceMode::kUploaded, Op{OpKind::kCopy, dst, {}, {}, {}, {}, 0}});
  }
  void download(Slice src, std::int32_t* dst) override { inner_->download(src, dst); }
  void launch(const Op& op) override {
    const bool recording = inner_->capturing();
    inner_->launch(op);
    if (enabled_) trace_.push(TraceEntry{phase_, recording ? TraceMode::kRecorded : TraceMode::kExecuted, op});
  }
  void begin_capture() override { inner_->begin_capture(); }
  Graph end_capture() override { return inner_->end_capture(); }
  void replay(Graph graph) override {
    inner_->replay(graph);
    if (!enabled_) return;
    // The graph's ops as the capture model recorded them (Note [one capture model]).
    const std::vector<RecordedOp>* ops = inner_->recorded_ops(graph);
    CAPCHECK_ASSERT(ops != nullptr);
    for (const RecordedOp& recorded : *ops) {
      trace_.push(TraceEntry{recorded.phase, TraceMode::kReplayed, recorded.op});
    }
  }
  void destroy_graph(Graph graph) override { inner_->destroy_graph(graph); }
  void synchronize() override { inner_->synchronize(); }
  bool capturing() const override { return inner_->capturing(); }
  const std::vector<RecordedOp>* recorded_ops(Graph graph) const override {
    return inner_->recorded_ops(graph);
  }
  void annotate(const char* phase) override {
    phase_ = phase;
    inner_->annotate(phase);
  }

  void set_enabled(bool enabled) {
    if (enabled) trace_.clear();
    enabled_ = enabled;
  }
  const Trace& trace() const { return trace_; }

 private:
  std::unique_ptr<Backend> inner_;
  bool enabled_ = false;
  const char* phase_ = "";
  Trace trace_;
};

}  // namespace capcheck::detail
