// The system under test, written once against Backend (docs/architecture.md).
// Implement Subject to put your own engine's capture path under capcheck's
// properties; TrtllmSubject (trtllm_subject.h) is the built-in one.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/errors.h"
#include "capcheck/instance.h"
#include "capcheck/scenario.h"

namespace capcheck {

/// A named device region that capture must leave bitwise unchanged.
struct NamedSlice {
  std::string name;
  Slice slice;
};

/// An engine's capture path. A subject owns persistent device buffers on one
/// backend; every call below issues device work on that backend's stream.
class Subject {
 public:
  virtual ~Subject() = default;

  /// Returns to the state right after construction: graphs released, buffers zero.
  virtual void reset() = 0;
  /// Writes one iteration's inputs and metadata from host (the engine's prepare step).
  virtual void prepare(const Scenario& scenario) = 0;
  /// The buffers a capture must not change, sized for the subject's limits.
  virtual const std::vector<NamedSlice>& persistent_buffers() const = 0;
  /// The in-place input update the forward begins with (`_preprocess_inputs`).
  virtual void preprocess() = 0;
  /// Its inverse (`_postprocess_inputs`).
  virtual void postprocess() = 0;
  /// One eager forward (preprocess, then the model) on the prepared inputs.
  virtual Slice forward_eager() = 0;
  /// Warmups and capture of the prepared key, following the scenario's protocol.
  virtual void capture() = 0;
  /// Copies the prepared inputs into the static buffers and replays the graph.
  virtual Slice replay() = 0;
  /// The static input buffers the graph reads and replay() must overwrite
  /// (whole buffers). Empty for a subject without static inputs.
  virtual std::vector<NamedSlice> static_inputs() const { return {}; }
};

/// Builds a subject on `backend` with buffers for `limits`.
using SubjectFactory =
    std::function<std::unique_ptr<Subject>(Backend& backend, const SubjectLimits& limits)>;

}  // namespace capcheck
