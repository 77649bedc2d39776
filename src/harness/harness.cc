#include "capcheck/harness.h"

#include <algorithm>

#include "capcheck/errors.h"
#include "capcheck/registry.h"

namespace capcheck {

namespace {

// Forwards every call to the real backend and, while enabled, appends what it
// sees to a Trace. Replays are expanded into the ops seen at capture.
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

}  // namespace

class Harness::Impl {
 public:
  Impl(std::unique_ptr<Backend> backend, SubjectFactory factory)
      : backend_(std::move(backend)), factory_(std::move(factory)) {
    if (!factory_) throw UsageError("Harness needs a subject factory (e.g. make_trtllm_subject)");
  }

  Subject& fitted(std::unique_ptr<Subject>& subject, const Scenario& scenario, bool reset = true) {
    grow(SubjectLimits{scenario.num_seqs(), scenario.num_tokens()});
    const bool fresh = !subject;
    if (fresh) {
      subject = factory_(backend_, limits_);
      CAPCHECK_ASSERT(subject != nullptr);
    }
    if (reset && !fresh) subject->reset();
    return *subject;
  }

  void grow(const SubjectLimits& needed) {
    if (needed.seqs_max <= limits_.seqs_max && needed.tokens_max <= limits_.tokens_max) return;
    limits_.seqs_max = std::max(limits_.seqs_max, needed.seqs_max);
    limits_.tokens_max = std::max(limits_.tokens_max, needed.tokens_max);
    graph_.reset();
    eager_.reset();
  }

  TracingBackend backend_;
  SubjectFactory factory_;
  std::vector<std::unique_ptr<Harness>> peers_;
  SubjectLimits limits_;
  std::unique_ptr<Subject> graph_;
  std::unique_ptr<Subject> eager_;
};

Harness::Harness(std::unique_ptr<Backend> backend, SubjectFactory factory)
    : impl_(std::make_unique<Impl>(std::move(backend), std::move(factory))) {}

Harness::~Harness() = default;

Backend& Harness::backend() { return impl_->backend_; }

Subject& Harness::graph_subject(const Scenario& scenario) {
  return impl_->fitted(impl_->graph_, scenario);
}

Subject& Harness::eager_subject(const Scenario& scenario) {
  return impl_->fitted(impl_->eager_, scenario);
}

void Harness::add_peer(std::unique_ptr<Backend> backend) {
  impl_->peers_.push_back(std::make_unique<Harness>(std::move(backend), impl_->factory_));
}

std::vector<std::string> add_available_peers(Harness& harness) {
  const std::vector<std::string> peers = other_available_backends(harness.backend().name());
  for (const std::string& name : peers) harness.add_peer(make_backend(name));
  return peers;
}

std::vector<Harness*> Harness::peers() {
  std::vector<Harness*> out;
  for (auto& peer : impl_->peers_) out.push_back(peer.get());
  return out;
}

void Harness::reserve(const SubjectLimits& limits) { impl_->grow(limits); }

Subject& Harness::continuing_graph_subject(const Scenario& scenario) {
  return impl_->fitted(impl_->graph_, scenario, /*reset=*/false);
}

void Harness::start_trace() { impl_->backend_.set_enabled(true); }
void Harness::stop_trace() { impl_->backend_.set_enabled(false); }
const Trace& Harness::trace() const { return impl_->backend_.trace(); }

}  // namespace capcheck
