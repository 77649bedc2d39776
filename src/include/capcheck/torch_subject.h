// LibTorch subjects (docs/torch-subjects.md): an engine's capture path written
// with ordinary LibTorch, put under every property of properties.h. A
// TorchSubject names its persistent tensors (any dtype, any shape, views
// allowed) and its static inputs; its capture and replay code uses the graph
// facade of torch_graph.h, which is the emulator on a CPU device and
// at::cuda::CUDAGraph on a CUDA one. make_torch_subjects() turns a factory of
// them into the Subjects the properties and runners take.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "capcheck/instance.h"
#include "capcheck/properties.h"
#include "capcheck/scenario.h"
#include "capcheck/subject.h"
#include "capcheck/subject_registry.h"
#include "capcheck/torch_graph.h"

namespace capcheck {

/// A tensor with the name reports give it.
struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

/// The sizes and device a subject is built for.
struct TorchSubjectOptions {
  torch::Device device = torch::kCPU;
  /// The graphs the subject makes (kEmulator on CPU tensors, kCuda on CUDA ones).
  torch_graph::GraphDevice graphs = torch_graph::GraphDevice::kEmulator;
  /// The largest batch the subject's persistent tensors hold.
  SubjectLimits limits;
};

/// An engine's capture path in LibTorch. Every call may issue device work;
/// persistent_tensors() and static_inputs() return the same tensors (same
/// storages) for the subject's life, so that a capture's effect on them shows.
class TorchSubject {
 public:
  virtual ~TorchSubject() = default;

  /// Back to the state right after construction: graphs released, tensors zero.
  virtual void reset() = 0;
  /// Writes one iteration's inputs and metadata (the engine's prepare step).
  virtual void prepare(const Scenario& scenario) = 0;
  /// The tensors a capture must not change, in a fixed order.
  virtual std::vector<NamedTensor> persistent_tensors() const = 0;
  /// The static inputs replay() must overwrite in full (empty: none).
  virtual std::vector<NamedTensor> static_inputs() const { return {}; }
  /// The in-place input update the forward begins with (`_preprocess_inputs`).
  virtual void preprocess() = 0;
  /// Its inverse (`_postprocess_inputs`).
  virtual void postprocess() = 0;
  /// One eager forward on the prepared inputs; its outputs, one row per token.
  virtual std::vector<NamedTensor> forward() = 0;
  /// Warmups and capture of the prepared key, following the subject's protocol.
  virtual void capture() = 0;
  /// Copies the prepared inputs into the static inputs and replays the
  /// prepared key's graph; the graph's outputs (the same tensors on every replay).
  virtual std::vector<NamedTensor> replay() = 0;
};

/// Builds a subject for `options`.
using TorchSubjectFactory =
    std::function<std::unique_ptr<TorchSubject>(const TorchSubjectOptions& options)>;

/// The Subjects of a LibTorch subject: a graph-path and an eager instance from
/// `factory`, on `device` (CPU: the emulator; CUDA: at::cuda::CUDAGraph),
/// rebuilt larger when a scenario does not fit. Snapshots are one read-back
/// per call; explanations come from a torch_graph::WriteTrace. `name` is the
/// device's name in reports ("emulator" or "cuda-graph" when empty).
std::unique_ptr<Subjects> make_torch_subjects(TorchSubjectFactory factory,
                                              torch::Device device = torch::kCPU,
                                              std::string name = "");

/// Builds a subject for `options` and the subject's own options (--option).
using TorchSubjectEntryFactory = std::function<std::unique_ptr<TorchSubject>(
    const TorchSubjectOptions& options, const SubjectOptions& subject_options)>;

/// A registry entry (subject_registry.h) for a LibTorch subject on the
/// devices "emulator" (CPU tensors, the capture emulator; the default) and
/// "cuda" (CUDA tensors, at::cuda::CUDAGraph; BackendError kUnavailable
/// without a GPU). Register it with CAPCHECK_REGISTER_SUBJECT.
SubjectEntry torch_subject_entry(std::string name, std::string description,
                                 TorchSubjectEntryFactory factory,
                                 std::vector<SubjectOption> options = {});

/// Options of the built-in LibTorch TensorRT-LLM runner.
struct TrtllmTorchOptions {
  /// Multimodal rotary positions: position ids `[3, 1, N]` instead of `[1, N]`.
  bool mrope = false;
  /// A defect: keep only a non-owning alias of each graph's output (the
  /// weak-reference pattern engines use to save pool memory), so the shared
  /// pool may hand the output's memory to the next key's capture.
  bool weak_outputs = false;
};

/// The built-in TensorRT-LLM runner written a second time, in LibTorch
/// (Note [the LibTorch TensorRT-LLM runner] in torch_subject/trtllm_torch.cc):
/// the same protocols and mutants as make_trtllm_subject, on real tensors.
std::unique_ptr<TorchSubject> make_trtllm_torch_subject(const TorchSubjectOptions& options,
                                                        TrtllmTorchOptions trtllm = {});

/// The differential property: every property in `properties` gives the same
/// verdict on `a` and on `b` for `scenario` (pass or fail, and the first
/// differing buffer of a failure). A failed verdict names the property and
/// both verdicts. `violated`, when given, is increased by the number of
/// properties both found violated.
Verdict verdicts_agree(Subjects& a, Subjects& b, const Scenario& scenario,
                       const std::vector<const PropertyInfo*>& properties,
                       int* violated = nullptr);

/// `element_type` of a dtype; UsageError naming it for a dtype capcheck does
/// not compare (complex, quantized).
ElementType element_type_of(torch::ScalarType dtype);

}  // namespace capcheck
