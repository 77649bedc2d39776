// The properties: functions (Harness&, Scenario) -> Verdict, each with a stable
// name that states its claim (docs/properties.md). Runners (RapidCheck/GoogleTest,
// the CLI, the fuzzer) all call these same functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/harness.h"
#include "capcheck/scenario.h"

namespace capcheck {

/// The first element where two runs disagree.
struct Mismatch {
  std::string buffer;
  std::int64_t index = 0;
  std::int32_t expected = 0;  // before capture / eager / reference run
  std::int32_t actual = 0;    // after capture / replay / other run
};

/// The outcome of one property on one scenario.
struct Verdict {
  bool passed = true;
  std::string property;
  /// What broke, in one sentence (empty when passed).
  std::string message;
  std::optional<Mismatch> mismatch;
  /// Further explanation: the operation that last wrote the element, or the
  /// model inputs each side computed with.
  std::vector<std::string> notes;
};

using PropertyFunction = Verdict (*)(Harness& harness, const Scenario& scenario);

struct PropertyInfo {
  std::string_view name;
  /// The claim, in one sentence.
  std::string_view claim;
  PropertyFunction check;
  /// A canary must fail: it proves the runners report failures. Not run by default.
  bool canary = false;
};

/// Every property, canaries last.
const std::vector<PropertyInfo>& all_properties();
/// Throws UsageError listing the known names.
const PropertyInfo& find_property(std::string_view name);

Verdict capture_preserves_inputs(Harness& harness, const Scenario& scenario);
Verdict first_replay_matches_eager(Harness& harness, const Scenario& scenario);
Verdict warmup_count_invariant(Harness& harness, const Scenario& scenario);
Verdict postprocess_inverts_preprocess(Harness& harness, const Scenario& scenario);
Verdict replays_match_eager(Harness& harness, const Scenario& scenario);
Verdict padding_is_inert(Harness& harness, const Scenario& scenario);
Verdict static_inputs_fully_copied(Harness& harness, const Scenario& scenario);
/// Compares harness.backend() with every peer (Harness::add_peer); UsageError
/// when there is none.
Verdict backends_agree(Harness& harness, const Scenario& scenario);
/// Canary: claims the forward never changes kv_lens, which is false whenever a
/// kv offset is non-zero.
Verdict canary_forward_never_changes_kv_lens(Harness& harness, const Scenario& scenario);

/// capture_preserves_inputs on `subject` as it is (not reset): prepare
/// `scenario`, snapshot, capture, compare. For runs that span iterations.
Verdict check_capture_preserves_inputs(Harness& harness, Subject& subject, const Scenario& scenario);

/// Compares two output arrays; a failed verdict of `property` names the first
/// differing token. `what` describes the actual side ("the replay of iteration 7").
Verdict check_outputs_equal(std::string_view property, const std::string& what,
                            const std::vector<std::int32_t>& expected,
                            const std::vector<std::int32_t>& actual);

/// Runs `property` and turns a BackendError raised by an illegal capture
/// (invalidated capture, dangling buffer, bad slice) into a failed verdict;
/// device failures (unavailable, device) propagate.
Verdict check_property(const PropertyInfo& property, Harness& harness, const Scenario& scenario);

/// A multi-line report of a failed verdict (message, mismatch, notes).
std::string format_verdict(const Verdict& verdict);

}  // namespace capcheck
