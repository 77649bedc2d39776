// main() of the property suites. Under CI=true (and when RC_PARAMS is not set)
// RapidCheck runs with a fixed seed, so CI is deterministic; CAPCHECK_PROFILE
// picks the number of cases: "ci" (default, 300), "long" (20000).
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  const char* profile_env = std::getenv("CAPCHECK_PROFILE");
  const std::string profile = profile_env ? profile_env : "ci";
  const char* ci = std::getenv("CI");
  if (std::getenv("RC_PARAMS") == nullptr) {
    std::string params = profile == "long" ? "max_success=20000" : "max_success=300";
    if (ci != nullptr && std::string(ci) == "true") params += " seed=20261127";
    setenv("RC_PARAMS", params.c_str(), 1);
  }
  std::cout << "capcheck property suite: profile=" << profile
            << " RC_PARAMS=" << std::getenv("RC_PARAMS") << std::endl;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
