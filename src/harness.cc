#include "capcheck/harness.h"

#include <algorithm>
#include <unordered_map>

#include "capcheck/errors.h"
#include "capcheck/trtllm_subject.h"

namespace capcheck {

const char* trace_mode_name(TraceMode mode) {
  switch (mode) {
    case TraceMode::kExecuted: return "executed eagerly";
    case TraceMode::kRecorded: return "recorded in the graph, not executed";
    case TraceMode::kReplayed: return "replayed from the graph";
    case TraceMode::kUploaded: return "uploaded from host";
  }
  return "unknown";
}

std::optional<TraceEntry> Trace::last_writer(Buffer buffer, std::int64_t index) const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->mode == TraceMode::kRecorded) continue;
    const Slice& dst = it->op.dst;
    if (dst.buffer == buffer && index >= dst.offset && index < dst.offset + dst.count) return *it;
  }
  return std::nullopt;
}

std::optional<TraceEntry> Trace::last_model_step() const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->mode != TraceMode::kRecorded && it->op.kind == OpKind::kModelStep) return *it;
  }
  return std::nullopt;
}

std::string describe(const Backend& backend, const TraceEntry& entry) {
  std::string op = entry.mode == TraceMode::kUploaded
                       ? "upload " + backend.label(entry.op.dst.buffer) + "[" +
                             std::to_string(entry.op.dst.offset) + ":" +
                             std::to_string(entry.op.dst.offset + entry.op.dst.count) + "]"
                       : describe(backend, entry.op);
  return std::string(entry.phase) + ": " + op + " (" + trace_mode_name(entry.mode) + ")";
}

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
    if (recording) capturing_ops_.push_back(TraceEntry{phase_, TraceMode::kRecorded, op});
    if (enabled_) trace_.push(TraceEntry{phase_, recording ? TraceMode::kRecorded : TraceMode::kExecuted, op});
  }
  void begin_capture() override {
    inner_->begin_capture();
    capturing_ops_.clear();
  }
  Graph end_capture() override {
    const Graph graph = inner_->end_capture();
    graphs_[graph.id] = std::move(capturing_ops_);
    capturing_ops_.clear();
    return graph;
  }
  void replay(Graph graph) override {
    inner_->replay(graph);
    if (!enabled_) return;
    const auto it = graphs_.find(graph.id);
    if (it == graphs_.end()) return;
    for (TraceEntry entry : it->second) {
      entry.mode = TraceMode::kReplayed;
      trace_.push(entry);
    }
  }
  void destroy_graph(Graph graph) override {
    inner_->destroy_graph(graph);
    graphs_.erase(graph.id);
  }
  void synchronize() override { inner_->synchronize(); }
  bool capturing() const override { return inner_->capturing(); }
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
  std::vector<TraceEntry> capturing_ops_;
  std::unordered_map<std::uint32_t, std::vector<TraceEntry>> graphs_;
};

}  // namespace

class Harness::Impl {
 public:
  Impl(std::unique_ptr<Backend> backend, SubjectFactory factory)
      : backend_(std::move(backend)), factory_(std::move(factory)) {
    if (!factory_) factory_ = make_trtllm_subject;
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
