#include "capcheck/harness.h"

#include <algorithm>

#include "capcheck/errors.h"
#include "capcheck/registry.h"
#include "op_instance.h"
#include "tracing_backend.h"

namespace capcheck {

using detail::OpInstance;
using detail::TracingBackend;

class Harness::Impl {
 public:
  Impl(std::unique_ptr<Backend> backend, SubjectFactory factory)
      : backend_(std::move(backend)),
        factory_(std::move(factory)),
        graph_instance_(backend_),
        eager_instance_(backend_) {
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
  OpInstance graph_instance_;
  OpInstance eager_instance_;
  Trace trace_;  // start_trace() / trace()
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

Instance& Harness::continuing_graph(const Scenario& scenario) {
  impl_->graph_instance_.bind(continuing_graph_subject(scenario));
  return impl_->graph_instance_;
}

Instance& Harness::graph(const Scenario& scenario) {
  impl_->graph_instance_.bind(graph_subject(scenario));
  return impl_->graph_instance_;
}

Instance& Harness::eager(const Scenario& scenario) {
  impl_->eager_instance_.bind(eager_subject(scenario));
  return impl_->eager_instance_;
}

std::vector<Subjects*> Harness::peer_subjects() {
  std::vector<Subjects*> out;
  for (auto& peer : impl_->peers_) out.push_back(peer.get());
  return out;
}

std::string Harness::device_name() const { return std::string(impl_->backend_.name()); }

void Harness::abandon_capture() {
  if (!impl_->backend_.capturing()) return;
  try {
    impl_->backend_.end_capture();
  } catch (const BackendError&) {
    // The capture was already invalid; ending it only resets the stream.
  }
}

void Harness::start_trace() { impl_->backend_.record_into(&impl_->trace_); }
void Harness::stop_trace() { impl_->backend_.record_into(nullptr); }
const Trace& Harness::trace() const { return impl_->trace_; }
void Harness::on_phase(std::function<void(const char*, const char*)> f) {
  impl_->backend_.on_phase(std::move(f));
}
const char* Harness::phase() const { return impl_->backend_.phase(); }

}  // namespace capcheck
