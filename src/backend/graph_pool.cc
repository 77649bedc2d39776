#include "capcheck/graph_pool.h"

#include <algorithm>

#include "capcheck/errors.h"

namespace capcheck {

GraphPool::GraphPool(Backend& backend, std::string label, std::int64_t segment_min)
    : backend_(backend), label_(std::move(label)), segment_min_(segment_min) {}

GraphPool::~GraphPool() {
  // Destructors never throw: a backend failure here is ignored.
  try {
    for (const Buffer& segment : segments_) backend_.free(segment);
  } catch (const std::exception&) {
  }
}

std::int64_t GraphPool::rounded(std::int64_t count) {
  if (count < 1) count = 1;
  return (count + kGranularity - 1) / kGranularity * kGranularity;
}

std::vector<GraphPool::Block>::iterator GraphPool::best_fit(std::int64_t size) {
  auto best = blocks_.end();
  for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
    if (it->live || it->size < size) continue;
    if (best == blocks_.end() || it->size < best->size) best = it;  // ties: the first, lowest
  }
  return best;
}

void GraphPool::reserve(std::int64_t count) {
  const std::int64_t size = rounded(count);
  if (best_fit(size) != blocks_.end()) return;
  const std::int64_t segment_size = std::max(size, rounded(segment_min_));
  segments_.push_back(backend_.allocate(label_, segment_size));
  blocks_.push_back(Block{segments_.size() - 1, 0, segment_size, false});
}

Slice GraphPool::allocate(std::int64_t count) {
  if (count < 0) throw UsageError("GraphPool::allocate: negative element count");
  const std::int64_t size = rounded(count);
  auto it = best_fit(size);
  if (it == blocks_.end()) {
    throw UsageError("GraphPool::allocate: no free block of " + std::to_string(size) +
                     " elements in pool '" + label_ + "' (reserve() before the capture)");
  }
  if (it->size > size) {
    const Block rest{it->segment, it->offset + size, it->size - size, false};
    it->size = size;
    it = blocks_.insert(it + 1, rest) - 1;
  }
  it->live = true;
  return Slice{segments_[it->segment], it->offset, count};
}

void GraphPool::release(const Slice& block) {
  auto it = std::find_if(blocks_.begin(), blocks_.end(), [&](const Block& b) {
    return b.live && b.offset == block.offset && segments_[b.segment] == block.buffer;
  });
  if (it == blocks_.end()) {
    throw UsageError("GraphPool::release: not a live block of pool '" + label_ + "'");
  }
  it->live = false;
  // Merge with free neighbours of the same segment.
  auto next = it + 1;
  if (next != blocks_.end() && !next->live && next->segment == it->segment) {
    it->size += next->size;
    it = blocks_.erase(next) - 1;
  }
  if (it != blocks_.begin()) {
    auto prev = it - 1;
    if (!prev->live && prev->segment == it->segment) {
      prev->size += it->size;
      blocks_.erase(it);
    }
  }
}

void GraphPool::release_all() {
  blocks_.clear();
  for (std::size_t s = 0; s < segments_.size(); ++s) {
    blocks_.push_back(Block{s, 0, segments_[s].size, false});
  }
}

std::size_t GraphPool::live_blocks_count() const {
  return static_cast<std::size_t>(
      std::count_if(blocks_.begin(), blocks_.end(), [](const Block& b) { return b.live; }));
}

}  // namespace capcheck
