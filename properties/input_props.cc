// Input properties: postprocess inverts preprocess on every branch, and
// padding dummy rows are inert.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "suite_support.h"

namespace capcheck {
namespace {

RC_GTEST_PROP(InputProperties, postprocess_inverts_preprocess, ()) {
  suites::require("postprocess_inverts_preprocess", *gen_scenario(GenOptions{}));
}

RC_GTEST_PROP(InputProperties, postprocess_inverts_preprocess_on_chunked_batches, ()) {
  GenOptions options;
  options.require_chunked = true;
  const Scenario s = *gen_scenario(options);
  RC_TAG(s.offsets_are_zero() ? "startup" : "runtime");
  suites::require("postprocess_inverts_preprocess", s);
}

RC_GTEST_PROP(InputProperties, padding_is_inert, ()) {
  suites::require("padding_is_inert", *gen_scenario(GenOptions{}));
}

}  // namespace
}  // namespace capcheck
