// Request phases follow admission, prefill progress and finishing.
#include "capcheck/sim/request.h"

#include <gtest/gtest.h>

namespace capcheck::sim {
namespace {

TEST(Request, PhaseFollowsProgress) {
  RequestState r;
  r.prompt_len = 10;
  EXPECT_EQ(r.phase(), RequestPhase::kWaiting);
  r.admitted = true;
  EXPECT_EQ(r.phase(), RequestPhase::kContext);
  r.context_pos = 10;
  EXPECT_EQ(r.phase(), RequestPhase::kGeneration);
  r.finished = true;
  EXPECT_EQ(r.phase(), RequestPhase::kFinished);
  EXPECT_EQ(request_phase_name(RequestPhase::kGeneration), "generation");
}

TEST(Request, GeneratedTokensCountFromThePrompt) {
  RequestState r;
  r.prompt_len = 4;
  r.host_tokens = 7;
  EXPECT_EQ(r.generated_tokens(), 3);
}

}  // namespace
}  // namespace capcheck::sim
