// The Subjects of a LibTorch subject: TorchInstance observes tensors as the
// properties' named, typed host copies (one read-back per snapshot), and
// explains changes from a WriteTrace of the instance's own work.
#include <algorithm>
#include <cstring>

#include "capcheck/errors.h"
#include "capcheck/torch_subject.h"

namespace capcheck {

ElementType element_type_of(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kInt32: return ElementType::kInt32;
    case torch::kInt64: return ElementType::kInt64;
    case torch::kFloat32: return ElementType::kFloat32;
    case torch::kFloat64: return ElementType::kFloat64;
    case torch::kUInt8: return ElementType::kUInt8;
    case torch::kBool: return ElementType::kBool;
    case torch::kInt8: return ElementType::kInt8;
    case torch::kInt16: return ElementType::kInt16;
    case torch::kFloat16: return ElementType::kFloat16;
    case torch::kBFloat16: return ElementType::kBFloat16;
    default:
      throw UsageError(std::string("capcheck does not compare tensors of dtype ") +
                       c10::toString(dtype));
  }
}

namespace {

// Host copies of `tensors` into `into` (names, types, shapes, bytes), with one
// device-to-host copy for all of them on a GPU.
void observe(const std::vector<NamedTensor>& tensors, std::vector<Observed>& into) {
  into.resize(tensors.size());
  bool on_host = true;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const torch::Tensor& t = tensors[k].tensor;
    Observed& o = into[k];
    if (o.name != tensors[k].name) o.name = tensors[k].name;
    o.type = element_type_of(t.scalar_type());
    o.shape.assign(t.sizes().begin(), t.sizes().end());
    o.bytes.resize(static_cast<std::size_t>(t.numel()) * t.element_size());
    on_host = on_host && t.device().is_cpu();
  }
  if (on_host) {
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      if (into[k].bytes.empty()) continue;
      const torch::Tensor& t = tensors[k].tensor;
      const torch::Tensor c = t.is_contiguous() ? t : t.contiguous();
      std::memcpy(into[k].bytes.data(), c.data_ptr(), into[k].bytes.size());
    }
    return;
  }
  std::vector<torch::Tensor> flat;
  flat.reserve(tensors.size());
  for (const NamedTensor& n : tensors) flat.push_back(n.tensor.contiguous().reshape({-1}).view(torch::kUInt8));
  const torch::Tensor all = torch::cat(flat).to(torch::kCPU);
  const auto* bytes = static_cast<const std::byte*>(all.data_ptr());
  std::size_t at = 0;
  for (auto& o : into) {
    std::memcpy(o.bytes.data(), bytes + at, o.bytes.size());
    at += o.bytes.size();
  }
}

// The address of flat (row-major) element `index` of `t`.
const void* element_address(const torch::Tensor& t, std::int64_t index) {
  std::int64_t offset = 0;
  for (std::int64_t d = t.dim(); d-- > 0;) {
    const std::int64_t size = std::max<std::int64_t>(t.size(d), 1);
    offset += (index % size) * t.stride(d);
    index /= size;
  }
  return static_cast<const char*>(t.data_ptr()) + offset * static_cast<std::int64_t>(t.element_size());
}

// Runs a call of the subject's code. LibTorch's own errors (c10::Error) come
// out as BackendError: CUDA's capture errors with their kinds (900, 901), a
// device failure as kDevice, and any other refusal of the subject's code
// (a shape or index error) as kInvalidValue, which a property reports as a
// failed verdict naming the phase.
template <typename F>
auto guarded(const char* phase, F&& f) {
  torch::NoGradGuard no_grad;  // engines run their forwards without autograd
  try {
    return f();
  } catch (const BackendError&) {
    throw;
  } catch (const UsageError&) {
    throw;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    BackendErrorKind kind = torch_graph::capture_error_kind(e);
    const bool device = what.find("CUDA error") != std::string::npos ||
                        what.find("CUBLAS") != std::string::npos ||
                        what.find("out of memory") != std::string::npos;
    if (kind == BackendErrorKind::kDevice && !device) kind = BackendErrorKind::kInvalidValue;
    throw_backend_error(kind, phase, std::string("LibTorch raised in the subject's ") + phase + ": " + what);
  }
}

class TorchInstance final : public Instance {
 public:
  void bind(TorchSubject& subject) {
    subject_ = &subject;
    outputs_.clear();
    held_.clear();
  }
  TorchSubject& subject() { return *subject_; }

  void prepare(const Scenario& scenario) override {
    phase("prepare");
    guarded("prepare", [&] { subject_->prepare(scenario); });
  }
  void preprocess() override {
    phase("preprocess");
    guarded("preprocess", [&] { subject_->preprocess(); });
  }
  void postprocess() override {
    phase("postprocess");
    guarded("postprocess", [&] { subject_->postprocess(); });
  }
  void capture() override {
    phase("capture");
    guarded("capture", [&] { subject_->capture(); });
  }
  void replay(Outputs& outputs) override {
    phase("replay");
    outputs_ = guarded("replay", [&] { return subject_->replay(); });
    observe(outputs_, outputs);
  }
  void forward_eager(Outputs& outputs) override {
    phase("eager forward");
    outputs_ = guarded("forward", [&] { return subject_->forward(); });
    observe(outputs_, outputs);
  }
  void snapshot(Snapshot& into) override { observe(subject_->persistent_tensors(), into); }

  void poison_static_inputs(std::int32_t pattern) override {
    for (const NamedTensor& input : subject_->static_inputs()) {
      const torch::Tensor& t = input.tensor;
      const std::int64_t bytes = t.numel() * static_cast<std::int64_t>(t.element_size());
      torch::Tensor fill = torch::empty({bytes}, torch::kUInt8);
      auto* data = fill.data_ptr<std::uint8_t>();
      for (std::int64_t b = 0; b < bytes; ++b) {
        data[b] = static_cast<std::uint8_t>(static_cast<std::uint32_t>(pattern) >> (8 * (b % 4)));
      }
      t.copy_(fill.view(t.scalar_type()).view(t.sizes()).to(t.device()));
    }
  }

  bool hold_outputs() override {
    held_ = outputs_;  // the device tensors the replay returned, as the engine keeps them
    return true;
  }
  void held_outputs(Outputs& into) override { observe(held_, into); }

  void start_trace() override {
    if (explanations_) trace_.start();
  }
  void set_explanations(bool on) { explanations_ = on; }
  void stop_trace() override { trace_.stop(); }

  std::string explain_change(std::size_t buffer, std::int64_t index) override {
    if (!explanations_) return "";
    const std::vector<NamedTensor> tensors = subject_->persistent_tensors();
    if (buffer >= tensors.size()) return "";
    const auto write = trace_.last_write(element_address(tensors[buffer].tensor, index));
    if (!write) return "";
    const torch::Tensor& t = tensors[buffer].tensor;
    return "last write to " +
           element_location(tensors[buffer].name, {t.sizes().begin(), t.sizes().end()}, index) +
           ": " + write->op + " during " + write->phase;
  }

  std::string explain_output(std::size_t output, std::int64_t index) override {
    if (!explanations_ || output >= outputs_.size()) return "";
    const torch::Tensor& t = outputs_[output].tensor;
    const std::string where =
        element_location(outputs_[output].name, {t.sizes().begin(), t.sizes().end()}, index);
    const auto write = trace_.last_write(element_address(t, index));
    if (!write) return where + " (no traced op wrote it)";
    return where + " in " + write->op + " during " + write->phase;
  }

 private:
  void phase(const char* name) {
    if (trace_.active()) trace_.set_phase(name);
  }

  TorchSubject* subject_ = nullptr;
  std::vector<NamedTensor> outputs_;  // of the last forward or replay
  std::vector<NamedTensor> held_;
  torch_graph::WriteTrace trace_;
  bool explanations_ = true;
};

class TorchSubjects final : public Subjects {
 public:
  TorchSubjects(TorchSubjectFactory factory, torch::Device device, std::string name)
      : factory_(std::move(factory)), name_(std::move(name)) {
    if (!factory_) throw UsageError("make_torch_subjects: the subject factory is empty");
    options_.device = device;
    options_.graphs = device.is_cuda() ? torch_graph::GraphDevice::kCuda
                                       : torch_graph::GraphDevice::kEmulator;
    if (name_.empty()) name_ = device.is_cuda() ? "cuda-graph" : "emulator";
  }

  Instance& graph(const Scenario& scenario) override {
    return fitted(scenario, graph_, graph_instance_, true);
  }
  Instance& eager(const Scenario& scenario) override {
    return fitted(scenario, eager_, eager_instance_, true);
  }
  Instance* continuing(const Scenario& scenario) override {
    return &fitted(scenario, graph_, graph_instance_, false);
  }
  void reserve(const SubjectLimits& limits) override {
    grow(limits.seqs_max, limits.tokens_max);
    fitted(Scenario{}, graph_, graph_instance_, true);
    fitted(Scenario{}, eager_, eager_instance_, true);
  }
  std::vector<Subjects*> peer_subjects() override { return {}; }
  std::string device_name() const override { return name_; }
  void set_explanations(bool on) override {
    graph_instance_.set_explanations(on);
    eager_instance_.set_explanations(on);
  }
  void abandon_capture() override {
    // Resetting releases the subject's graphs, which ends an open capture.
    if (graph_) graph_->reset();
    if (eager_) eager_->reset();
  }

 private:
  // Grows both subjects (they must stay alike) to the next power of two that
  // holds `seqs` and `tokens`; a growth rebuilds them.
  void grow(std::int32_t seqs, std::int32_t tokens) {
    if (seqs <= options_.limits.seqs_max && tokens <= options_.limits.tokens_max) return;
    auto next = [](std::int32_t have, std::int32_t need) {
      while (have < need) have *= 2;
      return have;
    };
    options_.limits.seqs_max = next(options_.limits.seqs_max, seqs);
    options_.limits.tokens_max = next(options_.limits.tokens_max, tokens);
    graph_.reset();
    eager_.reset();
  }

  Instance& fitted(const Scenario& scenario, std::unique_ptr<TorchSubject>& subject,
                   TorchInstance& instance, bool reset) {
    grow(scenario.num_seqs(), scenario.num_tokens());
    if (!subject) {
      subject = factory_(options_);
      if (!subject) throw UsageError("make_torch_subjects: the factory returned no subject");
      instance.bind(*subject);
    } else if (reset) {
      subject->reset();
    }
    return instance;
  }

  TorchSubjectFactory factory_;
  std::string name_;
  TorchSubjectOptions options_;
  std::unique_ptr<TorchSubject> graph_, eager_;
  TorchInstance graph_instance_, eager_instance_;
};

}  // namespace

std::unique_ptr<Subjects> make_torch_subjects(TorchSubjectFactory factory, torch::Device device,
                                              std::string name) {
  return std::make_unique<TorchSubjects>(std::move(factory), device, std::move(name));
}

SubjectEntry torch_subject_entry(std::string name, std::string description,
                                 TorchSubjectEntryFactory factory,
                                 std::vector<SubjectOption> options) {
  if (!factory) throw UsageError("torch_subject_entry " + name + ": the factory is empty");
  SubjectEntry entry;
  entry.name = std::move(name);
  entry.description = std::move(description);
  entry.devices = {"emulator", "cuda"};
  entry.options = std::move(options);
  entry.make = [factory = std::move(factory)](const SubjectRequest& request) {
    torch::Device device = torch::kCPU;
    if (request.device == "cuda") {
      std::string why;
      if (!torch_graph::cuda_graphs_available(&why)) {
        throw_backend_error(BackendErrorKind::kUnavailable, "torch_subject_entry",
                            "device cuda: " + why);
      }
      device = torch::Device(torch::kCUDA, 0);
    }
    const SubjectOptions chosen = request.options;
    return make_torch_subjects(
        [factory, chosen](const TorchSubjectOptions& o) { return factory(o, chosen); }, device);
  };
  return entry;
}

Verdict verdicts_agree(Subjects& a, Subjects& b, const Scenario& scenario,
                       const std::vector<const PropertyInfo*>& properties, int* violated) {
  Verdict agreed;
  agreed.property = "verdicts_agree";
  for (const PropertyInfo* property : properties) {
    const Verdict va = check_property(*property, a, scenario);
    const Verdict vb = check_property(*property, b, scenario);
    const std::string buffer_a = va.mismatch ? va.mismatch->buffer : "";
    const std::string buffer_b = vb.mismatch ? vb.mismatch->buffer : "";
    if (va.passed == vb.passed && buffer_a == buffer_b) {
      if (violated && !va.passed) ++*violated;
      continue;
    }
    agreed.passed = false;
    auto says = [](const Subjects& s, const Verdict& v) {
      return s.device_name() + " says " +
             (v.passed ? std::string("passed")
                       : "VIOLATED (" + (v.mismatch ? v.mismatch->location : v.message) + ")");
    };
    agreed.message = std::string(property->name) + ": " + says(a, va) + ", " + says(b, vb);
    agreed.notes.push_back(format_verdict(va));
    agreed.notes.push_back(format_verdict(vb));
    return agreed;
  }
  return agreed;
}

}  // namespace capcheck
