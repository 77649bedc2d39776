// The subject-neutral view the properties read (docs/architecture.md): a live
// instance of a subject on one device, driven through the capture protocol
// and observed as named, typed host copies of its state and outputs. The
// properties never see buffers, tensors or the subject's kind, so the same
// capture_preserves_inputs ... runs on any subject that provides an Instance
// (the op-level subjects through Harness, LibTorch subjects through
// make_torch_subjects in torch_subject.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/errors.h"
#include "capcheck/scenario.h"

namespace capcheck {

/// Buffer sizes a subject is built for: the largest key it will see.
struct SubjectLimits {
  std::int32_t seqs_max = 64;
  std::int32_t tokens_max = 512;

  /// True when `scenario` fits in buffers of these sizes.
  bool fits(const Scenario& scenario) const {
    return scenario.num_seqs() <= seqs_max && scenario.num_tokens() <= tokens_max;
  }
  /// UsageError naming both sizes when `scenario` does not fit.
  void require_fits(const Scenario& scenario) const {
    if (fits(scenario)) return;
    throw UsageError("scenario needs " + std::to_string(scenario.num_seqs()) + " requests and " +
                     std::to_string(scenario.num_tokens()) + " tokens; subject was built for " +
                     std::to_string(seqs_max) + " and " + std::to_string(tokens_max));
  }
};

/// The element type of observed values; comparisons are bitwise.
enum class ElementType : std::uint8_t {
  kInt32, kInt64, kFloat32, kFloat64, kUInt8, kBool, kInt8, kInt16, kFloat16, kBFloat16
};

/// Bytes per element.
std::size_t element_size(ElementType type);
/// The element at `data` as text: "-7", "1.5", "true", "nan", "-0".
std::string format_element(ElementType type, const std::byte* data);
/// "name[3]" for a 1-D (or unshaped) value, "name[0, 3]" for element 3 of a
/// `[1, N]` one: the row-major index of flat element `index` in `shape`.
std::string element_location(const std::string& name, const std::vector<std::int64_t>& shape,
                             std::int64_t index);

/// A named host copy of device values: a persistent buffer, a static input or
/// an output.
struct Observed {
  std::string name;
  ElementType type = ElementType::kInt32;
  std::vector<std::byte> bytes;
  /// The tensor's shape (row-major, contiguous), or empty for a flat buffer.
  std::vector<std::int64_t> shape;

  std::int64_t count() const {
    return static_cast<std::int64_t>(bytes.size() / element_size(type));
  }
  /// Element `index` as text.
  std::string element(std::int64_t index) const;
  /// True when element `index` is bitwise equal in both.
  bool same_element(const Observed& other, std::int64_t index) const;
};

/// The persistent state of an instance: one Observed per persistent buffer,
/// always in the same order.
using Snapshot = std::vector<Observed>;
/// What a forward or replay returned: one Observed per output, in order.
using Outputs = std::vector<Observed>;

/// The first element where two observations differ, with both values as text.
struct Mismatch {
  std::string buffer;
  std::int64_t index = 0;  // flat, row-major
  std::string expected;    // before capture / eager / reference run
  std::string actual;      // after capture / replay / other run
  /// "kv_lens_cuda[3]", "position_ids[0, 3]": the element in its buffer's shape.
  std::string location;
};

/// The first element (in buffer order) where `after` differs from `before`,
/// with the index of its buffer; false when bitwise equal. Both must come
/// from the same instance's snapshot() (same names, types and sizes), or be
/// two Outputs of the same forward.
struct SnapshotDifference {
  std::size_t buffer = 0;
  Mismatch mismatch;
};
bool first_difference(const Snapshot& before, const Snapshot& after, SnapshotDifference* out);
/// The first differing element of two observations of the same output.
bool first_difference(const Observed& expected, const Observed& actual, Mismatch* out);
/// "kv_lens_cuda (3 elements), static_position_ids (2 elements)": every buffer that differs.
std::string changed_buffers(const Snapshot& before, const Snapshot& after);

/// A live instance of a subject. Every call issues the subject's device work.
class Instance {
 public:
  virtual ~Instance() = default;

  /// Writes one iteration's inputs and metadata (the engine's prepare step).
  virtual void prepare(const Scenario& scenario) = 0;
  /// The in-place input update the forward begins with, and its inverse.
  virtual void preprocess() = 0;
  virtual void postprocess() = 0;
  /// Warmups and capture of the prepared key, following the subject's protocol.
  virtual void capture() = 0;
  /// Replays the captured graph on the prepared inputs; `outputs` receives host copies.
  virtual void replay(Outputs& outputs) = 0;
  /// One eager forward on the prepared inputs; `outputs` receives host copies.
  virtual void forward_eager(Outputs& outputs) = 0;
  /// Host copies of every persistent buffer, reusing `into`'s storage.
  virtual void snapshot(Snapshot& into) = 0;
  /// Overwrites every static input (what replay must copy in full) with
  /// `pattern` (repeated over its bytes, for any element type).
  virtual void poison_static_inputs(std::int32_t pattern) = 0;

  /// Keeps the device outputs of the last replay, as the engine that
  /// returned them would, so that held_outputs() can read them again after
  /// other work (graph_outputs_survive_other_replays). False when the
  /// instance cannot (its outputs are not its own per graph).
  virtual bool hold_outputs() { return false; }
  /// Host copies of the outputs kept by hold_outputs(), read now.
  virtual void held_outputs(Outputs& into) { (void)into; }

  /// Explanations, optional. Between start_trace() and stop_trace() the
  /// instance may record its device work; explain_change() then names what
  /// last wrote element `index` of snapshot buffer `buffer`, and
  /// explain_output() what the traced forward or replay read for element
  /// `index` of output `output` (or what last wrote it). Empty when the
  /// instance cannot tell.
  virtual void start_trace() {}
  virtual void stop_trace() {}
  virtual std::string explain_change(std::size_t buffer, std::int64_t index) {
    (void)buffer;
    (void)index;
    return "";
  }
  virtual std::string explain_output(std::size_t output, std::int64_t index) {
    (void)output;
    (void)index;
    return "";
  }
};

/// What a property runs on: a graph-path instance and a fresh eager instance
/// of one subject on one device, and peers on other devices.
class Subjects {
 public:
  virtual ~Subjects() = default;
  /// The graph-path instance, reset and fitted for `scenario`.
  virtual Instance& graph(const Scenario& scenario) = 0;
  /// The eager-reference instance (separate state), reset and fitted likewise.
  virtual Instance& eager(const Scenario& scenario) = 0;
  /// The graph-path instance with `scenario` captured: graph(scenario),
  /// prepare(scenario), capture(). The guard of a run (guard_subjects) hands
  /// back the instance as the previous property left it when all that
  /// property did since graph() was those calls and snapshots (Note [shared
  /// capture] in properties/guard.cc).
  virtual Instance& captured(const Scenario& scenario);
  /// The same subject on other devices (what backends_agree compares with).
  virtual std::vector<Subjects*> peer_subjects() = 0;
  /// The device's name in reports ("sim", "torch", "cuda", "emulator").
  virtual std::string device_name() const = 0;
  /// After a property threw out of an open capture: end it, so the next case
  /// starts on a stream that is not capturing.
  virtual void abandon_capture() = 0;
  /// Whether verdicts should carry explanations (Instance::explain_*). On by
  /// default; a runner turns them off while it searches and shrinks, and on
  /// for the one re-check whose verdict it reports, where tracing costs (the
  /// LibTorch subjects' WriteTrace).
  virtual void set_explanations(bool on) { (void)on; }

  /// For runs that span iterations (the engine simulator): the graph-path
  /// instance as it is, NOT reset (graphs captured earlier stay), fitted for
  /// `scenario`. Call reserve() first so that no refit drops graphs. Null for
  /// a subject that cannot keep state across scenarios.
  virtual Instance* continuing(const Scenario& scenario) {
    (void)scenario;
    return nullptr;
  }
  /// Builds the instances now with buffers for at least `limits`.
  virtual void reserve(const SubjectLimits& limits) { (void)limits; }
  /// The subject's registered name in reports ("" when unnamed).
  virtual std::string subject_name() const { return ""; }
};

}  // namespace capcheck
