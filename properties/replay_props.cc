// Replay properties under the correct protocol: the first replay, follow-up
// replays, and static inputs copied in full.
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

RC_GTEST_PROP(ReplayProperties, static_inputs_fully_copied, ()) {
  suites::require("static_inputs_fully_copied", *gen_scenario(GenOptions{}));
}

}  // namespace
}  // namespace capcheck
