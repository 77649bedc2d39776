// Note [subject exceptions]: a subject is the user's code, and it may throw
// anything: std::out_of_range from a vector, a runtime_error of its own, a
// c10::Error. capcheck's own errors (usage, backend, output, internal) keep
// their meaning; any other exception is a defect of the subject, reported as
// a failed verdict that names the subject, the phase and the original type
// and message (check_property), never as an internal error of capcheck.
// GuardedInstance wraps every call of an Instance to know the phase.
//
// Note [shared capture]: most properties begin alike: reset, prepare the
// scenario, capture (capture_preserves_inputs then compares snapshots,
// first_replay_matches_eager replays). When two of them check one scenario one
// after the other (a run of several properties with one seed, Note [lockstep]
// in runner/rc_runner.cc), the second need not capture again. The guard sees
// every call on the graph instance and keeps its stage: reset by graph(s),
// prepared with s, captured. Snapshots, traces and explanations leave the
// stage as it is (they write nothing the subject reads); every other call, a
// call that throws, eager(), continuing(), reserve(), abandon_capture() and
// set_explanations() make it unknown. captured(s) hands back the instance when
// its stage is "captured" for a scenario equal to s, and otherwise makes it so
// with graph(s), prepare(s), capture(). The reused instance is in the state
// those three calls leave on a deterministic subject, so verdicts are the same
// either way.
#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <typeinfo>

#include "capcheck/errors.h"
#include "capcheck/properties.h"

namespace capcheck {

namespace {

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

// Runs `call`; rethrows capcheck's own errors as they are and any other
// exception as a SubjectError of `phase`.
template <class Call>
decltype(auto) guarded(const std::string& subject, const char* phase, Call&& call) {
  try {
    return call();
  } catch (const UsageError&) {
    throw;
  } catch (const BackendError&) {
    throw;
  } catch (const OutputError&) {
    throw;
  } catch (const InternalError&) {
    throw;
  } catch (const SubjectError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw SubjectError(subject, phase, type_name(typeid(e)), e.what());
  } catch (...) {
    throw SubjectError(subject, phase, "an exception of a type not derived from std::exception",
                       "");
  }
}

class GuardedInstance final : public Instance {
 public:
  GuardedInstance(const std::string& subject) : subject_(subject) {}
  Instance& wrap(Instance& inner) {
    inner_ = &inner;
    return *this;
  }

  // Note [shared capture]: the stage of the wrapped instance.
  enum class Stage { kUnknown, kReset, kPrepared, kCaptured };
  void reset_for(const Scenario& s) {
    stage_ = Stage::kReset;
    scenario_ = s;
  }
  void forget() { stage_ = Stage::kUnknown; }
  bool captured_for(const Scenario& s) const { return stage_ == Stage::kCaptured && scenario_ == s; }

  void prepare(const Scenario& s) override {
    const Stage next = stage_ == Stage::kReset && s == scenario_ ? Stage::kPrepared : Stage::kUnknown;
    forget();
    guarded(subject_, "prepare", [&] { inner_->prepare(s); });
    stage_ = next;
  }
  void preprocess() override {
    forget();
    guarded(subject_, "preprocess", [&] { inner_->preprocess(); });
  }
  void postprocess() override {
    forget();
    guarded(subject_, "postprocess", [&] { inner_->postprocess(); });
  }
  void capture() override {
    const Stage next = stage_ == Stage::kPrepared ? Stage::kCaptured : Stage::kUnknown;
    forget();
    guarded(subject_, "capture", [&] { inner_->capture(); });
    stage_ = next;
  }
  void replay(Outputs& o) override {
    forget();
    guarded(subject_, "replay", [&] { inner_->replay(o); });
  }
  void forward_eager(Outputs& o) override {
    forget();
    guarded(subject_, "forward", [&] { inner_->forward_eager(o); });
  }
  void snapshot(Snapshot& into) override {
    const Stage stage = stage_;
    forget();
    guarded(subject_, "snapshot", [&] { inner_->snapshot(into); });
    stage_ = stage;
  }
  void poison_static_inputs(std::int32_t pattern) override {
    forget();
    guarded(subject_, "poison_static_inputs", [&] { inner_->poison_static_inputs(pattern); });
  }
  bool hold_outputs() override {
    forget();
    return guarded(subject_, "hold_outputs", [&] { return inner_->hold_outputs(); });
  }
  void held_outputs(Outputs& into) override {
    forget();
    guarded(subject_, "held_outputs", [&] { inner_->held_outputs(into); });
  }
  void start_trace() override { inner_->start_trace(); }
  void stop_trace() override { inner_->stop_trace(); }
  std::string explain_change(std::size_t buffer, std::int64_t index) override {
    return inner_->explain_change(buffer, index);
  }
  std::string explain_output(std::size_t output, std::int64_t index) override {
    return inner_->explain_output(output, index);
  }

 private:
  const std::string& subject_;
  Instance* inner_ = nullptr;
  Stage stage_ = Stage::kUnknown;
  Scenario scenario_;
};

class GuardedSubjects final : public Subjects {
 public:
  GuardedSubjects(Subjects& inner, std::unique_ptr<Subjects> owned, std::string name)
      : inner_(inner), owned_(std::move(owned)), name_(std::move(name)),
        graph_(name_), eager_(name_) {
    if (name_.empty()) name_ = inner_.subject_name();
  }

  Instance& graph(const Scenario& s) override {
    graph_.forget();
    Instance& instance =
        graph_.wrap(guarded(name_, "construction", [&]() -> Instance& { return inner_.graph(s); }));
    graph_.reset_for(s);
    return instance;
  }
  Instance& eager(const Scenario& s) override {
    graph_.forget();
    return eager_.wrap(guarded(name_, "construction", [&]() -> Instance& { return inner_.eager(s); }));
  }
  Instance& captured(const Scenario& s) override {
    if (graph_.captured_for(s)) return graph_;
    return Subjects::captured(s);
  }
  Instance* continuing(const Scenario& s) override {
    graph_.forget();
    Instance* inner = guarded(name_, "construction", [&] { return inner_.continuing(s); });
    return inner ? &graph_.wrap(*inner) : nullptr;
  }
  void reserve(const SubjectLimits& limits) override {
    graph_.forget();
    guarded(name_, "construction", [&] { inner_.reserve(limits); });
  }
  std::vector<Subjects*> peer_subjects() override { return inner_.peer_subjects(); }
  std::string device_name() const override { return inner_.device_name(); }
  void abandon_capture() override {
    graph_.forget();
    inner_.abandon_capture();
  }
  void set_explanations(bool on) override {
    graph_.forget();
    inner_.set_explanations(on);
  }
  std::string subject_name() const override { return name_; }

 private:
  Subjects& inner_;
  std::unique_ptr<Subjects> owned_;
  std::string name_;
  GuardedInstance graph_, eager_;
};

}  // namespace

std::unique_ptr<Subjects> guard_subjects(std::unique_ptr<Subjects> subjects, std::string name) {
  CAPCHECK_ASSERT(subjects != nullptr);
  Subjects& inner = *subjects;
  return std::make_unique<GuardedSubjects>(inner, std::move(subjects), std::move(name));
}

std::unique_ptr<Subjects> guard_subjects(Subjects& subjects, std::string name) {
  return std::make_unique<GuardedSubjects>(subjects, nullptr, std::move(name));
}

bool is_guarded(const Subjects& subjects) {
  return dynamic_cast<const GuardedSubjects*>(&subjects) != nullptr;
}

}  // namespace capcheck
