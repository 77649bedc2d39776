// Capture properties under the correct protocol: generated scenarios, all
// batch compositions, startup and runtime offsets.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "suite_support.h"

namespace capcheck {
namespace {

RC_GTEST_PROP(CaptureProperties, capture_preserves_inputs, ()) {
  suites::require("capture_preserves_inputs", *gen_scenario(GenOptions{}));
}

RC_GTEST_PROP(CaptureProperties, warmup_count_invariant, ()) {
  suites::require("warmup_count_invariant", *gen_scenario(GenOptions{}));
}

}  // namespace
}  // namespace capcheck
