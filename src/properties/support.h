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

/// follow_up(s, i) as the overlap scheduler serves it: every real generation
/// request accepted a new number of draft tokens in the previous iteration,
/// and the offsets are derived from it as the generator derives them
/// (position offset accepted + 1, kv offset accepted - draft_len; dummies
/// zero). With draft_len 0 there are no offsets: follow_up(s, i).
Scenario follow_up_with_new_offsets(const Scenario& s, std::int32_t i);

/// `s` with another draft length (one more, or one fewer at the limit, or
/// when one more would not fit kTokensMax) and the same batch: each
/// generation request carries 1 + draft_len tokens (one more id, its
/// positions, its kv_len), its position offset repeated, at most draft_len
/// accepted. The graph key differs from `s`'s in draft_len only. False when
/// there is no generation request (the draft length changes nothing), or
/// when `s` or the result would not be valid (a field left out by a
/// subject's own generator, a kv_len or position at its limit).
bool with_other_draft_len(const Scenario& s, Scenario* out);

/// A valid scenario like `s` with another graph key: one more context request
/// of one token, first, with a token id no token of `s` has; or, at the
/// batch-size limit, one generation request fewer (or one context fewer).
Scenario another_key(const Scenario& s);
/// `s` with its last real generation request made a padding dummy (zero
/// offsets, nothing accepted): the same key and tokens, one real request
/// fewer. False when `s` has no real generation request.
bool one_more_dummy(const Scenario& s, Scenario* out);

}  // namespace capcheck::properties_detail
