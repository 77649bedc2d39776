// CUDA-graph batch sizes: TensorRT-LLM's default lists, the executor filter
// and the padding rule, against hand-computed cases.
#include "capcheck/sim/batch_sizes.h"

#include <gtest/gtest.h>

#include <vector>

namespace capcheck::sim {
namespace {

using Sizes = std::vector<std::int32_t>;

TEST(BatchSizes, DefaultListWithPaddingIsOneTwoFourThenMultiplesOfEight) {
  EXPECT_EQ(generate_cuda_graph_batch_sizes(128, true),
            (Sizes{1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128}));
  EXPECT_EQ(generate_cuda_graph_batch_sizes(20, true), (Sizes{1, 2, 4, 8, 16, 20}));
  EXPECT_EQ(generate_cuda_graph_batch_sizes(1, true), (Sizes{1}));
  // Above 128: powers of two below the maximum, then the maximum itself.
  const Sizes big = generate_cuda_graph_batch_sizes(256, true);
  EXPECT_EQ(Sizes(big.end() - 3, big.end()), (Sizes{120, 128, 256}));
}

TEST(BatchSizes, DefaultListWithoutPaddingIsEverySizeBelowThirtyTwo) {
  Sizes expected;
  for (std::int32_t i = 1; i <= 32; ++i) expected.push_back(i);
  expected.insert(expected.end(), {64, 128});
  EXPECT_EQ(generate_cuda_graph_batch_sizes(128, false), expected);
  EXPECT_EQ(generate_cuda_graph_batch_sizes(5, false), (Sizes{1, 2, 3, 4, 5}));
  const Sizes big = generate_cuda_graph_batch_sizes(200, false);
  EXPECT_EQ(Sizes(big.end() - 3, big.end()), (Sizes{64, 128, 200}));
}

TEST(BatchSizes, MaxGraphBatchIsBoundByTokensPerGenerationRequest) {
  // min(16, 40 / (1 + 3)) = 10.
  EXPECT_EQ(max_cuda_graph_batch_size(16, 40, 3), 10);
  EXPECT_EQ(max_cuda_graph_batch_size(16, 40, 0), 16);
  EXPECT_EQ(max_cuda_graph_batch_size(16, 41, 4), 8);  // 41 / 5 rounds down
}

TEST(BatchSizes, FilterKeepsSizesUpToTheMaxAndPadsToTheMaxItself) {
  // max_batch_size 16, max_num_tokens 40, draft_len 3: max_cg_bs = 10.
  const Sizes padded_default = generate_cuda_graph_batch_sizes(128, true);
  EXPECT_EQ(filter_cuda_graph_batch_sizes(padded_default, 16, 40, 3, true),
            (Sizes{1, 2, 4, 8, 10}));
  EXPECT_EQ(filter_cuda_graph_batch_sizes(padded_default, 16, 40, 3, false), (Sizes{1, 2, 4, 8}));
  const Sizes unpadded_default = generate_cuda_graph_batch_sizes(128, false);
  EXPECT_EQ(filter_cuda_graph_batch_sizes(unpadded_default, 16, 40, 3, false),
            (Sizes{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  // The maximum is not appended twice when it is already in the list.
  EXPECT_EQ(filter_cuda_graph_batch_sizes({1, 2, 10, 16}, 16, 40, 3, true), (Sizes{1, 2, 10}));
  // Every size too large: with padding the maximum alone survives.
  EXPECT_EQ(filter_cuda_graph_batch_sizes({32, 64}, 16, 40, 3, true), (Sizes{10}));
  EXPECT_EQ(filter_cuda_graph_batch_sizes({32, 64}, 16, 40, 3, false), (Sizes{}));
}

TEST(BatchSizes, RoundUpFindsTheSmallestSupportedSizeAtLeastTheBatch) {
  const Sizes supported{1, 2, 4, 8};
  EXPECT_EQ(round_up_batch_size(supported, 1), 1);
  EXPECT_EQ(round_up_batch_size(supported, 3), 4);
  EXPECT_EQ(round_up_batch_size(supported, 5), 8);
  EXPECT_EQ(round_up_batch_size(supported, 9), 0);
  EXPECT_EQ(round_up_batch_size({}, 1), 0);
}

TEST(BatchSizes, PaddingFillsTheGapToTheNextSupportedSize) {
  const Sizes supported{1, 2, 4, 8};
  EXPECT_EQ(padding_size(supported, true, 3, 16), 1);  // 3 -> 4: one dummy
  EXPECT_EQ(padding_size(supported, true, 5, 16), 3);  // 5 -> 8
  EXPECT_EQ(padding_size(supported, true, 4, 16), 0);  // already supported
  EXPECT_EQ(padding_size(supported, true, 9, 16), 0);  // beyond every size: eager, no padding
  EXPECT_EQ(padding_size(supported, false, 3, 16), 0);
  EXPECT_EQ(padding_size(supported, true, 3, 3), 0);   // padded batch would exceed max_batch_size
}

}  // namespace
}  // namespace capcheck::sim
