// The scheduler: every generation request runs; context requests share the
// remaining slots and token budget first come, first served; unfinished
// chunks are ordered before last chunks.
#include "capcheck/sim/scheduler.h"

#include <gtest/gtest.h>

#include <vector>

namespace capcheck::sim {
namespace {

RequestState waiting(RequestId id, std::int32_t prompt_len) {
  RequestState r;
  r.id = id;
  r.prompt_len = prompt_len;
  r.device_tokens = r.host_tokens = prompt_len;
  return r;
}

RequestState prefilling(RequestId id, std::int32_t prompt_len, std::int32_t context_pos) {
  RequestState r = waiting(id, prompt_len);
  r.admitted = true;
  r.context_pos = context_pos;
  return r;
}

RequestState generating(RequestId id, std::int32_t prompt_len) {
  return prefilling(id, prompt_len, prompt_len);
}

EngineConfig config_of(std::int32_t max_batch_size, std::int32_t max_num_tokens,
                       std::int32_t draft_len, std::int32_t chunk_size) {
  EngineConfig c;
  c.max_batch_size = max_batch_size;
  c.max_num_tokens = max_num_tokens;
  c.draft_len = draft_len;
  c.chunk_size = chunk_size;
  return c;
}

TEST(Scheduler, GenerationRequestsCostOnePlusDraftLenAndLeaveTheRestToContexts) {
  // Two generation requests at draft_len 2 take 6 of 20 tokens; the waiting
  // request gets a chunk of min(30, chunk 16, budget 14) = 14.
  const auto batch = schedule(config_of(4, 20, 2, 16),
                              {generating(0, 5), waiting(1, 30), generating(2, 5)});
  ASSERT_EQ(batch.generation_requests.size(), 2u);
  EXPECT_EQ(batch.generation_requests[0].id, 0);
  EXPECT_EQ(batch.generation_requests[1].id, 2);
  EXPECT_EQ(batch.generation_requests[0].num_tokens, 3);
  ASSERT_EQ(batch.context_requests.size(), 1u);
  EXPECT_EQ(batch.context_requests[0].id, 1);
  EXPECT_EQ(batch.context_requests[0].num_tokens, 14);
  EXPECT_FALSE(batch.context_requests[0].last_chunk);
  EXPECT_EQ(batch.admitted, (std::vector<RequestId>{1}));
  EXPECT_EQ(batch.num_tokens(), 20);
  EXPECT_FALSE(batch.generation_only());
}

TEST(Scheduler, UnfinishedChunksComeBeforeLastChunks) {
  // Request 0 finishes its prompt (last chunk); request 1 needs more chunks.
  const auto batch = schedule(config_of(4, 100, 0, 8), {prefilling(0, 12, 8), waiting(1, 20)});
  ASSERT_EQ(batch.context_requests.size(), 2u);
  EXPECT_EQ(batch.context_requests[0].id, 1);
  EXPECT_FALSE(batch.context_requests[0].last_chunk);
  EXPECT_EQ(batch.context_requests[1].id, 0);
  EXPECT_TRUE(batch.context_requests[1].last_chunk);
  EXPECT_EQ(batch.context_requests[1].num_tokens, 4);
  EXPECT_EQ(batch.num_chunked_ctx_requests(), 1);
}

TEST(Scheduler, WithoutChunkingAPromptWaitsUntilItFitsAndBlocksLaterOnes) {
  EngineConfig config = config_of(4, 10, 0, 8);
  config.chunked_prefill = false;
  // 2 generation tokens leave 8: the 9-token prompt waits, and so does the 1-token one behind it.
  const auto batch = schedule(config, {generating(0, 3), generating(1, 3), waiting(2, 9),
                                       waiting(3, 1)});
  EXPECT_EQ(batch.generation_requests.size(), 2u);
  EXPECT_TRUE(batch.context_requests.empty());
  EXPECT_TRUE(batch.admitted.empty());
}

TEST(Scheduler, AdmissionStopsAtTheActiveRequestBound) {
  // active_requests_max = min(4, 12 / 3) = 4: with three active, one more is admitted.
  const auto batch = schedule(config_of(4, 12, 2, 64),
                              {generating(0, 2), generating(1, 2), prefilling(2, 4, 1),
                               waiting(3, 1), waiting(4, 1)});
  EXPECT_EQ(batch.admitted, (std::vector<RequestId>{3}));
  EXPECT_EQ(batch.batch_size(), 4);
}

TEST(Scheduler, FinishedRequestsAreIgnored) {
  RequestState done = generating(0, 3);
  done.finished = true;
  const auto batch = schedule(config_of(4, 64, 1, 8), {done});
  EXPECT_EQ(batch.batch_size(), 0);
}

}  // namespace
}  // namespace capcheck::sim
