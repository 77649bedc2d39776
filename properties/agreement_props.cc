// Backend agreement: the sim and every other backend of this build (torch on
// CPU in CI; cuda and torch on CUDA on a GPU machine) agree bitwise after each
// phase. Skipped with a message when only one backend is available.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "suite_support.h"

namespace capcheck {
namespace {

TEST(AgreementProperties, backends_agree) {
  if (suites::harness_with_peers().peers().empty()) GTEST_SKIP() << "skipped: only the sim backend is available";
  rc::detail::checkGTest([] { suites::require("backends_agree", *gen_scenario(GenOptions{})); });
}

}  // namespace
}  // namespace capcheck
