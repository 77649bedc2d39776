// One property of capcheck on the built-in subject, and the canary, from a
// project outside capcheck's tree.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "capcheck/capcheck.h"

namespace {

capcheck::Harness& harness() {
  static capcheck::Harness h(capcheck::make_sim_backend(), capcheck::make_trtllm_subject);
  return h;
}

RC_GTEST_PROP(Consumer, capture_preserves_inputs, ()) {
  const capcheck::Scenario scenario = *capcheck::gen_scenario(capcheck::GenOptions{});
  const capcheck::Verdict verdict = capcheck::check_property(
      capcheck::find_property("capture_preserves_inputs"), harness(), scenario);
  RC_ASSERT(verdict.passed);
}

TEST(Consumer, SeedPrIsViolated) {
  capcheck::Scenario scenario = capcheck::decode_token("cc1:AQIAAQEAAAABAQQBBAICAgEBAgAAAgACAQEAAPWXp8I");
  scenario.protocol = capcheck::Protocol::kSeedPr;
  const capcheck::Verdict verdict = capcheck::check_property(
      capcheck::find_property("capture_preserves_inputs"), harness(), scenario);
  EXPECT_FALSE(verdict.passed);
}

}  // namespace
