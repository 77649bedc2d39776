// Device memory of the cuda backend: slabs with first-fit free lists and a
// pinned host mirror (Note [one slab, one readback] in cuda_backend.cu).
#pragma once

#include <cstdint>
#include <map>

#include "handles.h"

namespace capcheck::cuda_detail {

struct Slab {
  DeviceMemory memory;
  std::int64_t bytes = 0;
  std::int64_t used_end = 0;                     // high-water mark of carved blocks
  std::map<std::int64_t, std::int64_t> free_blocks;  // offset -> bytes
  PinnedMemory mirror;                           // host copy of [0, used_end)
  std::uint64_t mirror_epoch = 0;                // device_epoch_ it was copied at; 0: never

  char* base() const { return static_cast<char*>(memory.get()); }
};

struct Region {
  std::int32_t slab = -1;  // -1: an empty buffer, no memory
  std::int64_t offset = 0;
  std::int64_t bytes = 0;
  std::int32_t* data = nullptr;
};

}  // namespace capcheck::cuda_detail
