// The acceptance model: deterministic, bounded, and pinned to exact values so
// that a seed replays the same run on every machine.
#include "capcheck/sim/acceptance.h"

#include <gtest/gtest.h>

namespace capcheck::sim {
namespace {

TEST(Acceptance, SplitMix64MatchesTheReferenceSequence) {
  // splitmix64 seeded with 0: the first outputs of Vigna's reference generator.
  EXPECT_EQ(splitmix64(0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(splitmix64(0x9e3779b97f4a7c15ull), 0x6e789e6aa1b965f4ull);
}

TEST(Acceptance, CountsStayWithinZeroToDraftLen) {
  const AcceptanceModel model(7, 60);
  for (std::int64_t request = 0; request < 50; ++request) {
    for (std::int64_t iteration = 0; iteration < 50; ++iteration) {
      const std::int32_t accepted = model.accepted(request, iteration, 4);
      EXPECT_GE(accepted, 0);
      EXPECT_LE(accepted, 4);
    }
  }
  EXPECT_EQ(model.accepted(3, 3, 0), 0);
}

TEST(Acceptance, PercentZeroRejectsAndPercentHundredAcceptsEverything) {
  const AcceptanceModel never(1, 0);
  const AcceptanceModel always(1, 100);
  for (std::int64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(never.accepted(i, i, 3), 0);
    EXPECT_EQ(always.accepted(i, i, 3), 3);
  }
}

TEST(Acceptance, SameSeedSameCountsOtherSeedOtherCounts) {
  const AcceptanceModel a(42, 60), b(42, 60), c(43, 60);
  int differences = 0;
  for (std::int64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(a.accepted(i % 7, i, 3), b.accepted(i % 7, i, 3));
    differences += a.accepted(i % 7, i, 3) != c.accepted(i % 7, i, 3);
  }
  EXPECT_GT(differences, 20);
}

TEST(Acceptance, MeanFollowsTheGeometricAcceptanceRate) {
  // Expected accepted of 3 drafts at p = 0.6: 0.6 + 0.36 + 0.216 = 1.176.
  const AcceptanceModel model(0, 60);
  std::int64_t total = 0;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) total += model.accepted(i, i / 3, 3);
  EXPECT_NEAR(static_cast<double>(total) / kDraws, 1.176, 0.05);
}

TEST(Acceptance, TokenIdsAreInTheVocabularyAndPinned) {
  const AcceptanceModel model(0, 60);
  for (std::int32_t p = 0; p < 100; ++p) {
    const std::int32_t id = model.token_id(5, p, 32000);
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 32000);
  }
  EXPECT_EQ(model.token_id(5, 3, 1), 0);
}

}  // namespace
}  // namespace capcheck::sim
