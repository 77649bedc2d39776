// Replay properties under the correct protocol: the first replay, follow-up
// replays (with the captured offsets and with new ones), two keys one draft
// length apart, nothing of a capture left for later forwards, and static
// inputs copied in full.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "suite_support.h"

namespace capcheck {
namespace {

RC_GTEST_PROP(ReplayProperties, first_replay_matches_eager, ()) {
  suites::require("first_replay_matches_eager", *gen_scenario(GenOptions{}));
}

RC_GTEST_PROP(ReplayProperties, replays_match_eager, ()) {
  suites::require("replays_match_eager", *gen_scenario(GenOptions{}));
}

// Follow-ups with new accepted counts and offsets, as the overlap scheduler
// serves them.
RC_GTEST_PROP(ReplayProperties, replays_track_new_offsets, ()) {
  suites::require("replays_track_new_offsets", *gen_scenario(GenOptions{}));
}

RC_GTEST_PROP(ReplayProperties, graph_cache_keys_distinct, ()) {
  suites::require("graph_cache_keys_distinct", *gen_scenario(GenOptions{}));
}

RC_GTEST_PROP(ReplayProperties, capture_state_does_not_leak, ()) {
  suites::require("capture_state_does_not_leak", *gen_scenario(GenOptions{}));
}

RC_GTEST_PROP(ReplayProperties, static_inputs_fully_copied, ()) {
  suites::require("static_inputs_fully_copied", *gen_scenario(GenOptions{}));
}

}  // namespace
}  // namespace capcheck
