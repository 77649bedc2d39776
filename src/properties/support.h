// Pieces shared by the property families (not public).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "capcheck/instance.h"
#include "capcheck/properties.h"

namespace capcheck::properties_detail {

Verdict pass(std::string_view name);
Verdict fail(std::string_view name, std::string message, std::optional<Mismatch> mismatch = {});

/// The first element where `actual` differs from `expected`, as a failed
/// verdict of `name` whose message starts with `what`; nullopt when equal.
std::optional<Verdict> compare_outputs(std::string_view name, const std::string& what,
                                       const Outputs& expected, const Outputs& actual);

/// The persistent state of an instance before and after a window of device
/// work (the window is traced). Kept per thread: no allocation per case.
class SnapshotWindow {
 public:
  /// Snapshots `instance`, runs `body` under the instance's trace, snapshots
  /// again; true when some persistent element changed (difference() says where).
  template <typename F>
  bool changed_by(Instance& instance, F body) {
    instance.snapshot(before_);
    instance.start_trace();
    body();
    instance.stop_trace();
    instance.snapshot(after_);
    return first_difference(before_, after_, &difference_);
  }
  const SnapshotDifference& difference() const { return difference_; }
  /// Every buffer that changed, with its count of changed elements.
  std::string changed() const { return changed_buffers(before_, after_); }

 private:
  Snapshot before_;
  Snapshot after_;
  SnapshotDifference difference_;
};

/// "BUFFER[i] from X to Y".
std::string changed_text(const Mismatch& m);

/// The eager outputs of `scenario` on a fresh eager instance.
Outputs eager_outputs(Subjects& subjects, const Scenario& scenario);

/// The i-th follow-up iteration of `s` with the same graph key: new token ids,
/// positions and kv_lens one step on (back, at their limits), so it is valid
/// whenever `s` is; follow_up(s, 0) is `s`.
Scenario follow_up(const Scenario& s, std::int32_t i);

/// A valid scenario like `s` with another graph key: one more (non-chunked)
/// context request of one token, or, at the batch-size limit, one generation
/// request fewer (or one context fewer).
Scenario another_key(const Scenario& s);
/// `s` with its last real generation request made a padding dummy (zero
/// offsets, nothing accepted): the same key and tokens, one real request
/// fewer. False when `s` has no real generation request.
bool one_more_dummy(const Scenario& s, Scenario* out);

}  // namespace capcheck::properties_detail
