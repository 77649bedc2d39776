// RAII handles of CUDA runtime objects, for the cuda backend. Destruction
// never throws (CAPCHECK_CUDA_WARN).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "cuda_check.h"

namespace capcheck::cuda_detail {

template <typename T, typename Traits>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(T handle) : handle_(handle) {}
  ~UniqueHandle() { reset(); }
  UniqueHandle(UniqueHandle&& other) noexcept : handle_(std::exchange(other.handle_, T{})) {}
  UniqueHandle& operator=(UniqueHandle&& other) noexcept {
    if (this != &other) reset(std::exchange(other.handle_, T{}));
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;

  T get() const { return handle_; }
  explicit operator bool() const { return handle_ != T{}; }
  void reset(T handle = T{}) noexcept {
    if (handle_ != T{}) Traits::destroy(handle_);
    handle_ = handle;
  }

 private:
  T handle_{};
};

struct DeviceMemoryTraits {
  static void destroy(void* pointer) noexcept { CAPCHECK_CUDA_WARN(cudaFree(pointer)); }
};
struct PinnedMemoryTraits {
  static void destroy(void* pointer) noexcept { CAPCHECK_CUDA_WARN(cudaFreeHost(pointer)); }
};
struct StreamTraits {
  static void destroy(cudaStream_t stream) noexcept {
    CAPCHECK_CUDA_WARN(cudaStreamDestroy(stream));
  }
};
struct GraphTraits {
  static void destroy(cudaGraph_t graph) noexcept { CAPCHECK_CUDA_WARN(cudaGraphDestroy(graph)); }
};
struct GraphExecTraits {
  static void destroy(cudaGraphExec_t exec) noexcept {
    CAPCHECK_CUDA_WARN(cudaGraphExecDestroy(exec));
  }
};

using DeviceMemory = UniqueHandle<void*, DeviceMemoryTraits>;
using PinnedMemory = UniqueHandle<void*, PinnedMemoryTraits>;
using StreamHandle = UniqueHandle<cudaStream_t, StreamTraits>;
using GraphHandle = UniqueHandle<cudaGraph_t, GraphTraits>;
using GraphExecHandle = UniqueHandle<cudaGraphExec_t, GraphExecTraits>;

inline DeviceMemory device_alloc(std::int64_t bytes) {
  void* pointer = nullptr;
  CAPCHECK_CUDA_CHECK(cudaMalloc(&pointer, static_cast<std::size_t>(bytes)));
  return DeviceMemory(pointer);
}

inline PinnedMemory pinned_alloc(std::int64_t bytes, unsigned int flags = cudaHostAllocDefault) {
  void* pointer = nullptr;
  CAPCHECK_CUDA_CHECK(cudaHostAlloc(&pointer, static_cast<std::size_t>(bytes), flags));
  return PinnedMemory(pointer);
}

}  // namespace capcheck::cuda_detail
