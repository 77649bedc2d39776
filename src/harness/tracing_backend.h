// The tracing front of the harness: forwards every call to the real backend
// and, while enabled, appends what it sees to a Trace. A replay is expanded
// into the ops the capture model recorded for the graph.
#pragma once

#include <functional>
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
    if (target_) target_->push(TraceEntry{phase_, TraceMode::kUploaded, Op{OpKind::kCopy, dst, {}, {}, {}, {}, 0}});
  }
  void download(Slice src, std::int32_t* dst) override { inner_->download(src, dst); }
  void launch(const Op& op) override {
    const bool recording = inner_->capturing();
    inner_->launch(op);
    if (target_) target_->push(TraceEntry{phase_, recording ? TraceMode::kRecorded : TraceMode::kExecuted, op});
  }
  void begin_capture() override { inner_->begin_capture(); }
  Graph end_capture() override { return inner_->end_capture(); }
  void replay(Graph graph) override {
    inner_->replay(graph);
    if (target_ == nullptr) return;
    // The graph's ops as the capture model recorded them (Note [one capture model]).
    const std::vector<RecordedOp>* ops = inner_->recorded_ops(graph);
    CAPCHECK_ASSERT(ops != nullptr);
    for (const RecordedOp& recorded : *ops) {
      target_->push(TraceEntry{recorded.phase, TraceMode::kReplayed, recorded.op});
    }
  }
  void destroy_graph(Graph graph) override { inner_->destroy_graph(graph); }
  void synchronize() override { inner_->synchronize(); }
  bool capturing() const override { return inner_->capturing(); }
  const std::vector<RecordedOp>* recorded_ops(Graph graph) const override {
    return inner_->recorded_ops(graph);
  }
  void annotate(const char* phase) override {
    if (on_phase_) on_phase_(phase_, phase);
    phase_ = phase;
    inner_->annotate(phase);
  }

  /// Called at every phase boundary with the phase that ends and the one that
  /// starts (null: no longer called).
  void on_phase(std::function<void(const char* ended, const char* next)> f) { on_phase_ = std::move(f); }
  /// The phase of the work issued now.
  const char* phase() const { return phase_; }

  /// Records into `target` (cleared first) until record_into(nullptr).
  void record_into(Trace* target) {
    if (target) target->clear();
    target_ = target;
  }

 private:
  std::unique_ptr<Backend> inner_;
  Trace* target_ = nullptr;  // where traced work goes; null: not tracing
  const char* phase_ = "";
  std::function<void(const char*, const char*)> on_phase_;
};

}  // namespace capcheck::detail
