// main() for GoogleTest suites of capcheck properties (capcheck::gtest_main):
// CAPCHECK_PROFILE picks the number of cases per RapidCheck property, "ci"
// (default, 300) or "long" (20000), unless RC_PARAMS sets max_success. Under
// CI=true RapidCheck's seed is fixed (Note [CI seeds] in generators.cc), so a
// user's suite linked with this main is as deterministic as capcheck's own.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "capcheck/generators.h"

int main(int argc, char** argv) {
  const char* profile_env = std::getenv("CAPCHECK_PROFILE");
  const std::string profile = profile_env ? profile_env : "ci";
  capcheck::apply_ci_rapidcheck_params(profile == "long" ? 20000 : 300);
  const char* params = std::getenv("RC_PARAMS");
  std::cout << "capcheck test main: profile=" << profile
            << " RC_PARAMS=" << (params ? params : "") << std::endl;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
