// The harness: one backend (behind a tracing front) and two op-level subjects
// built on it, one for the graph path and one fresh copy for the eager
// reference; it is the Subjects (instance.h) the properties run on.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/detail/trace.h"
#include "capcheck/instance.h"
#include "capcheck/subject.h"

namespace capcheck {

class Harness final : public Subjects {
 public:
  /// Takes ownership of `backend`; subjects are built by `factory`
  /// (make_trtllm_subject for the built-in one). A null factory is a UsageError.
  Harness(std::unique_ptr<Backend> backend, SubjectFactory factory);
  ~Harness() override;
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  /// The backend every subject issues work to (tracing when enabled).
  Backend& backend();
  /// The graph-path subject, reset and with buffers large enough for `scenario`.
  Subject& graph_subject(const Scenario& scenario);
  /// The eager-reference subject (separate buffers), reset and fitted likewise.
  Subject& eager_subject(const Scenario& scenario);

  /// Builds the subjects (if needed) with buffers for at least `limits`, so
  /// that later calls never rebuild them (a rebuild drops captured graphs).
  void reserve(const SubjectLimits& limits) override;
  /// The graph-path subject as it is, NOT reset: for runs that span
  /// iterations (graphs captured earlier stay). Fitted like graph_subject().
  Subject& continuing_graph_subject(const Scenario& scenario);
  /// The same, as the Instance the properties read.
  Instance& continuing_graph(const Scenario& scenario);

  /// Adds another backend (with its own subjects) that backends_agree
  /// compares this one with.
  void add_peer(std::unique_ptr<Backend> backend);
  /// The peers added, in order.
  std::vector<Harness*> peers();

  /// Starts recording device work into trace() (cleared first).
  void start_trace();
  /// Stops recording.
  void stop_trace();
  const Trace& trace() const;
  /// Calls `f(ended, next)` at every phase boundary the subjects annotate
  /// (Backend::annotate), before the next phase's work; null stops it. For
  /// dumps of the state after each phase (`capcheck check --dump`).
  void on_phase(std::function<void(const char* ended, const char* next)> f);
  /// The phase annotated last.
  const char* phase() const;

  // Subjects
  Instance& graph(const Scenario& scenario) override;
  Instance& eager(const Scenario& scenario) override;
  std::vector<Subjects*> peer_subjects() override;
  std::string device_name() const override;
  void abandon_capture() override;
  Instance* continuing(const Scenario& scenario) override { return &continuing_graph(scenario); }

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

/// Adds every other backend available here (registry.h) as a peer of
/// `harness`, with the harness's subject factory; returns their names.
std::vector<std::string> add_available_peers(Harness& harness);

}  // namespace capcheck
