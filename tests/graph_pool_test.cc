// GraphPool: the shared graph memory pool of op-level subjects (capture rule
// 6, Note [graph pools] in capcheck/graph_pool.h).
#include <gtest/gtest.h>

#include "capcheck/errors.h"
#include "capcheck/graph_pool.h"
#include "capcheck/sim_backend.h"

namespace capcheck {
namespace {

constexpr std::int64_t kBlock = GraphPool::kGranularity;

bool overlap(const Slice& a, const Slice& b) {
  return a.buffer == b.buffer && a.offset < b.offset + b.count && b.offset < a.offset + a.count;
}

TEST(GraphPool, ABlockGivenBackIsTheNextCapturesOutput) {
  // Rule 6: the pool hands a freed block to the next request that fits.
  auto backend = make_sim_backend();
  GraphPool pool(*backend, "pool", 4 * kBlock);
  pool.reserve(100);
  const Slice first = pool.allocate(100);
  pool.release(first);
  const Slice second = pool.allocate(100);
  EXPECT_EQ(second.buffer, first.buffer);
  EXPECT_EQ(second.offset, first.offset);
}

TEST(GraphPool, LiveBlocksNeverOverlap) {
  auto backend = make_sim_backend();
  GraphPool pool(*backend, "pool", 2 * kBlock);
  std::vector<Slice> live;
  for (std::int64_t count : {std::int64_t{1}, kBlock, kBlock + 1, std::int64_t{3}, 2 * kBlock}) {
    pool.reserve(count);
    live.push_back(pool.allocate(count));
    EXPECT_EQ(live.back().count, count);
  }
  for (std::size_t i = 0; i < live.size(); ++i) {
    for (std::size_t j = i + 1; j < live.size(); ++j) {
      EXPECT_FALSE(overlap(live[i], live[j])) << i << " and " << j;
    }
  }
  EXPECT_EQ(pool.live_blocks_count(), live.size());
}

TEST(GraphPool, TheSmallestFreeBlockThatFitsIsTaken) {
  auto backend = make_sim_backend();
  GraphPool pool(*backend, "pool", 4 * kBlock);
  pool.reserve(4 * kBlock);
  const Slice a = pool.allocate(kBlock), b = pool.allocate(2 * kBlock), c = pool.allocate(kBlock);
  pool.release(b);  // a free block of 2, between a and c
  pool.release(c);  // merges with b's: one free block of 3 blocks
  pool.release(a);  // and with a's: the whole segment
  const Slice whole = pool.allocate(4 * kBlock);
  EXPECT_EQ(whole.offset, 0);
  EXPECT_EQ(pool.segments().size(), 1u);
  pool.release(whole);
  // Two free blocks, of 1 and 3 blocks: a request of 1 takes the smaller.
  const Slice x = pool.allocate(kBlock), y = pool.allocate(kBlock);
  pool.release(x);
  const Slice small = pool.allocate(1);
  EXPECT_EQ(small.offset, x.offset);
  (void)y;
}

TEST(GraphPool, AllocationIsLegalWhileCapturingReservationIsNot) {
  auto backend = make_sim_backend();
  GraphPool pool(*backend, "pool", kBlock);
  pool.reserve(kBlock);
  backend->begin_capture();
  const Slice block = pool.allocate(kBlock);  // no backend call
  EXPECT_EQ(block.count, kBlock);
  // No free block fits: a new segment would be a cudaMalloc, refused (rule 4).
  EXPECT_THROW(pool.reserve(kBlock), BackendError);
  EXPECT_THROW(backend->end_capture(), BackendError);
}

TEST(GraphPool, AllocateWithoutAFittingBlockOrReleaseOfAStrangerIsAUsageError) {
  auto backend = make_sim_backend();
  GraphPool pool(*backend, "pool");
  EXPECT_THROW(pool.allocate(1), UsageError);
  pool.reserve(1);
  const Slice block = pool.allocate(1);
  pool.release(block);
  EXPECT_THROW(pool.release(block), UsageError);  // twice
  const Buffer other = backend->allocate("other", kBlock);
  EXPECT_THROW(pool.release(Slice{other, 0, 1}), UsageError);
}

TEST(GraphPool, ReleaseAllKeepsTheSegments) {
  auto backend = make_sim_backend();
  GraphPool pool(*backend, "pool", kBlock);
  pool.reserve(kBlock);
  const Slice a = pool.allocate(kBlock);
  pool.reserve(kBlock);
  pool.allocate(kBlock);
  EXPECT_EQ(pool.segments().size(), 2u);
  pool.release_all();
  EXPECT_EQ(pool.live_blocks_count(), 0u);
  EXPECT_EQ(pool.segments().size(), 2u);
  pool.reserve(kBlock);  // fits: no third segment
  EXPECT_EQ(pool.segments().size(), 2u);
  EXPECT_EQ(pool.allocate(kBlock).buffer, a.buffer);  // the lowest among equals
}

}  // namespace
}  // namespace capcheck
