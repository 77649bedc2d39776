// The Instance of an op-level Subject on a Backend (the harness's adapter):
// snapshots are int32 downloads of the subject's persistent buffers, and the
// explanations come from the harness's trace of the backend's ops.
#pragma once

#include <string>

#include "capcheck/backend.h"
#include "capcheck/detail/trace.h"
#include "capcheck/instance.h"
#include "capcheck/subject.h"

namespace capcheck::detail {

class TracingBackend;

class OpInstance final : public Instance {
 public:
  explicit OpInstance(TracingBackend& backend) : backend_(backend) {}

  /// The subject this instance drives (rebound when the harness rebuilds it).
  void bind(Subject& subject) { subject_ = &subject; }
  Subject& subject() { return *subject_; }

  void prepare(const Scenario& scenario) override { subject_->prepare(scenario); }
  void preprocess() override { subject_->preprocess(); }
  void postprocess() override { subject_->postprocess(); }
  void capture() override { subject_->capture(); }
  void replay(Outputs& outputs) override;
  void forward_eager(Outputs& outputs) override;
  void snapshot(Snapshot& into) override;
  void poison_static_inputs(std::int32_t pattern) override;
  bool hold_outputs() override;
  void held_outputs(Outputs& into) override;

  void start_trace() override;
  void stop_trace() override;
  std::string explain_change(std::size_t buffer, std::int64_t index) override;
  std::string explain_output(std::size_t output, std::int64_t index) override;

 private:
  void observe(const Slice& slice, Observed& into);

  TracingBackend& backend_;
  Subject* subject_ = nullptr;
  Trace trace_;  // the last traced window of this instance
  Slice replayed_{};  // what the last replay returned
  Slice held_{};
};

}  // namespace capcheck::detail
