// The properties: functions (Subjects&, Scenario) -> Verdict, each with a
// stable name that states its claim (docs/properties.md). They read only the
// subject-neutral Instance (instance.h): named, typed snapshots and outputs.
// Runners (RapidCheck/GoogleTest, the CLI, the fuzzer) all call these same
// functions; a Harness is the Subjects of an op-level subject.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/instance.h"
#include "capcheck/scenario.h"

namespace capcheck {

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

using PropertyFunction = Verdict (*)(Subjects& subjects, const Scenario& scenario);

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

Verdict capture_preserves_inputs(Subjects& subjects, const Scenario& scenario);
Verdict first_replay_matches_eager(Subjects& subjects, const Scenario& scenario);
Verdict warmup_count_invariant(Subjects& subjects, const Scenario& scenario);
Verdict postprocess_inverts_preprocess(Subjects& subjects, const Scenario& scenario);
Verdict replays_match_eager(Subjects& subjects, const Scenario& scenario);
Verdict replays_track_new_offsets(Subjects& subjects, const Scenario& scenario);
/// Captures the key with its last real generation request turned into a
/// padding dummy, replays it on the scenario itself: a host value baked at
/// capture (a real token count in a padded bucket) shows.
Verdict bucket_reuse_matches_eager(Subjects& subjects, const Scenario& scenario);
Verdict padding_is_inert(Subjects& subjects, const Scenario& scenario);
Verdict static_inputs_fully_copied(Subjects& subjects, const Scenario& scenario);
/// Two keys captured, the first replayed and its outputs kept, the second
/// replayed: the kept outputs are unchanged (capture rule 6).
Verdict graph_cache_keys_distinct(Subjects& subjects, const Scenario& scenario);
Verdict capture_state_does_not_leak(Subjects& subjects, const Scenario& scenario);
Verdict graph_outputs_survive_other_replays(Subjects& subjects, const Scenario& scenario);
/// Compares the subjects' device with every peer (Subjects::peer_subjects);
/// UsageError when there is none.
Verdict backends_agree(Subjects& subjects, const Scenario& scenario);
/// Canary: claims the forward never changes kv_lens, which is false whenever a
/// kv offset is non-zero.
Verdict canary_forward_never_changes_kv_lens(Subjects& subjects, const Scenario& scenario);

/// capture_preserves_inputs on `graph` as it is (not reset): prepare
/// `scenario`, snapshot, capture, compare. For runs that span iterations.
Verdict check_capture_preserves_inputs(Instance& graph, const Scenario& scenario);

/// Compares two observations of one output; a failed verdict of `property`
/// names the first differing element. `what` describes the actual side ("the
/// replay of iteration 7").
Verdict check_outputs_equal(std::string_view property, const std::string& what,
                            const Outputs& expected, const Outputs& actual);

/// Runs `property` and turns a BackendError raised by an illegal capture
/// (invalidated capture, dangling buffer, bad slice) and a SubjectError (an
/// exception the subject threw, Note [subject exceptions]) into a failed
/// verdict; device failures (unavailable, device) propagate.
Verdict check_property(const PropertyInfo& property, Subjects& subjects, const Scenario& scenario);
/// Within a catch block: the failed verdict of `property` that check_property
/// makes of the exception in flight (an illegal backend call or a
/// SubjectError), after ending an open capture; rethrows any other exception.
Verdict failure_of_current_exception(std::string_view property, Subjects& subjects);

/// `subjects` behind a guard (Note [subject exceptions] in
/// properties/guard.cc): an exception of a type capcheck does not know,
/// thrown by the subject, becomes a SubjectError naming `name` (default: the
/// subject's own subject_name()), the phase and the original message, which
/// check_property reports as a failed verdict. run_property guards the
/// subjects it is given; the subject registry guards what it builds.
std::unique_ptr<Subjects> guard_subjects(std::unique_ptr<Subjects> subjects, std::string name = "");
/// The same without ownership: `subjects` must outlive the guard.
std::unique_ptr<Subjects> guard_subjects(Subjects& subjects, std::string name = "");
/// True for the Subjects guard_subjects returns.
bool is_guarded(const Subjects& subjects);

/// A multi-line report of a failed verdict (message, mismatch, notes).
std::string format_verdict(const Verdict& verdict);

}  // namespace capcheck
