// Replay properties under the correct protocol.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "suite_support.h"

namespace capcheck {
namespace {

RC_GTEST_PROP(ReplayProperties, first_replay_matches_eager, ()) {
  suites::require("first_replay_matches_eager", *gen_scenario(GenOptions{}));
}

}  // namespace
}  // namespace capcheck
