// Engine configuration: validation names the offending field; supported sizes
// and the active-request bound follow from the limits.
#include "capcheck/sim/engine_config.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "capcheck/errors.h"

namespace capcheck::sim {
namespace {

std::string rejection(const std::function<void(EngineConfig&)>& edit) {
  EngineConfig config;
  edit(config);
  try {
    validate(config);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(EngineConfig, DefaultsAreValid) { EXPECT_NO_THROW(validate(EngineConfig{})); }

TEST(EngineConfig, RejectionsNameTheFieldAndTheAllowedRange) {
  EXPECT_NE(rejection([](auto& c) { c.max_batch_size = 0; }).find("max_batch_size is 0"),
            std::string::npos);
  EXPECT_NE(rejection([](auto& c) { c.max_batch_size = kBatchSizeMax + 1; }).find("max_batch_size"),
            std::string::npos);
  EXPECT_NE(rejection([](auto& c) { c.draft_len = kDraftLenMax + 1; }).find("draft_len"),
            std::string::npos);
  EXPECT_NE(rejection([](auto& c) {
              c.draft_len = 3;
              c.max_num_tokens = 3;
            }).find("max_num_tokens is 3, allowed 4.."),
            std::string::npos);
  EXPECT_NE(rejection([](auto& c) { c.chunk_size = 0; }).find("chunk_size"), std::string::npos);
  EXPECT_NE(rejection([](auto& c) { c.cuda_graph_batch_sizes = {1, 4, 2}; }).find("ascending"),
            std::string::npos);
  EXPECT_NE(rejection([](auto& c) { c.acceptance_percent = 101; }).find("acceptance_percent"),
            std::string::npos);
  EXPECT_NE(rejection([](auto& c) { c.max_seq_len = 1; }).find("max_seq_len"), std::string::npos);
  // chunk_size does not matter when chunked prefill is off.
  EXPECT_EQ(rejection([](auto& c) {
              c.chunked_prefill = false;
              c.chunk_size = 0;
            }),
            "accepted");
}

TEST(EngineConfig, CapturePolicyNamesRoundTrip) {
  for (int i = 0; i < kCapturePolicyCount; ++i) {
    const auto policy = static_cast<CapturePolicy>(i);
    EXPECT_EQ(parse_capture_policy(capture_policy_name(policy)), policy);
  }
  try {
    parse_capture_policy("eventually");
    FAIL() << "accepted an unknown policy";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("startup, lazy, startup-only"), std::string::npos);
  }
}

TEST(EngineConfig, SupportedSizesUseTheDefaultListFilteredByTheLimits) {
  EngineConfig config;
  config.max_batch_size = 16;
  config.max_num_tokens = 40;
  config.draft_len = 3;
  EXPECT_EQ(supported_batch_sizes(config), (std::vector<std::int32_t>{1, 2, 4, 8, 10}));
  EXPECT_EQ(active_requests_max(config), 10);
  config.cuda_graph_batch_sizes = {1, 3, 5};
  EXPECT_EQ(supported_batch_sizes(config), (std::vector<std::int32_t>{1, 3, 5}));
  config.use_cuda_graph = false;
  EXPECT_TRUE(supported_batch_sizes(config).empty());
}

}  // namespace
}  // namespace capcheck::sim
