// A memory pool shared by the graphs of an op-level subject (capture rule 6,
// docs/capture-rules.md).
//
// Note [graph pools]: an engine captures every graph key into one pool
// (torch.cuda.graph(pool=...), CUDAGraphRunner's shared pool) so that the
// keys' graphs share memory. The pool's caching allocator hands a block that
// was freed to the next request that fits, so a graph's output is safe only
// while its owner holds the block: an output whose owner let go of it (a
// weak reference kept to save memory) is the next capture's output too, and
// a replay of that graph overwrites it. GraphPool models that allocator on
// any Backend:
//   - reserve() grows the pool by a segment (a Backend buffer) when no free
//     block fits; it allocates, so it is called before the capture begins,
//     as the caching allocator's segments exist before a capture uses them;
//   - allocate() takes the smallest free block that fits (the lowest address
//     among equals) and splits off the rest; it calls no backend, so it is
//     legal while capturing, as allocation from a graph's private pool is;
//   - release() gives the block back and merges it with free neighbours.
// Sizes are rounded up to kGranularity elements (512 bytes of int32, the
// caching allocator's rounding of small blocks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "capcheck/backend.h"

namespace capcheck {

class GraphPool {
 public:
  static constexpr std::int64_t kGranularity = 128;

  /// Segments are labelled `label` in reports; each is at least `segment_min`
  /// elements.
  GraphPool(Backend& backend, std::string label, std::int64_t segment_min = 0);
  ~GraphPool();
  GraphPool(const GraphPool&) = delete;
  GraphPool& operator=(const GraphPool&) = delete;

  /// Makes sure a block of `count` elements can be allocated without a new
  /// segment. Allocates one when needed: not while capturing.
  void reserve(std::int64_t count);
  /// The smallest free block of at least `count` elements (rounded up), as a
  /// slice of its first `count` elements. Throws UsageError when none is free
  /// (reserve() first).
  Slice allocate(std::int64_t count);
  /// Gives back a block allocate() returned; UsageError for anything else.
  void release(const Slice& block);
  /// Gives back every block (the segments stay, as the allocator's cache).
  void release_all();

  /// The segments' buffers, oldest first.
  const std::vector<Buffer>& segments() const { return segments_; }
  std::size_t live_blocks_count() const;

 private:
  struct Block {
    std::size_t segment;
    std::int64_t offset;
    std::int64_t size;
    bool live;
  };
  static std::int64_t rounded(std::int64_t count);
  std::vector<Block>::iterator best_fit(std::int64_t size);

  Backend& backend_;
  std::string label_;
  std::int64_t segment_min_;
  std::vector<Buffer> segments_;
  std::vector<Block> blocks_;  // by segment, then offset; they tile every segment
};

}  // namespace capcheck
