// The cuda backend's kernels: one per elementwise op, the model step
// (Note [model_step bounds] in cuda_backend.cu), and the batch kernel of
// Note [eager batching]. Arithmetic wraps modulo 2^32, as in the sim.
// Included by cuda_backend.cu only.
#pragma once

#include <cstdint>

#include "capcheck/backend.h"
#include "capcheck/detail/model.h"

namespace capcheck::cuda_detail {

constexpr int kThreadsPerBlock = 256;
constexpr std::int64_t kBlocksMax = 1024;           // grid-stride loops beyond this
constexpr int kModelStepThreads = 1024;            // Note [model_step bounds]: one block
constexpr int kBatchThreads = 512;                 // Note [eager batching]: one block
constexpr int kBatchOpsMax = 64;                   // ops per batch (kernel parameter <= 4 KiB)
constexpr std::int64_t kBatchElementsMax = 1 << 16;  // larger ops get their own launch

struct KernelErrorRecord {
  int status;  // 0: no error; 1: a model_step sequence id was out of range
  int token;
  int seq;
  long long kv_count;
};

__device__ inline std::int32_t wrap_add(std::int32_t a, std::int32_t b) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) + static_cast<std::uint32_t>(b));
}
__device__ inline std::int32_t wrap_sub(std::int32_t a, std::int32_t b) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) - static_cast<std::uint32_t>(b));
}

// Elements [first, count) in steps of `stride` of one elementwise op.
__device__ inline void elementwise(OpKind kind, std::int32_t* dst, const std::int32_t* src,
                                   std::int64_t count, std::int32_t value, std::int64_t first,
                                   std::int64_t stride) {
  switch (kind) {
    case OpKind::kAdd:
      for (std::int64_t i = first; i < count; i += stride) dst[i] = wrap_add(dst[i], src[i]);
      return;
    case OpKind::kSub:
      for (std::int64_t i = first; i < count; i += stride) dst[i] = wrap_sub(dst[i], src[i]);
      return;
    case OpKind::kCopy:
      for (std::int64_t i = first; i < count; i += stride) dst[i] = src[i];
      return;
    default:
      for (std::int64_t i = first; i < count; i += stride) dst[i] = value;
      return;
  }
}

template <OpKind kKind>
__global__ void elementwise_kernel(std::int32_t* dst, const std::int32_t* src,
                                   std::int64_t count, std::int32_t value) {
  elementwise(kKind, dst, src, count, value,
              static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
              static_cast<std::int64_t>(blockDim.x) * gridDim.x);
}

// Note [model_step bounds]. Called by every thread of exactly one block.
__device__ void model_step_block(std::int32_t* out, const std::int32_t* input_ids,
                                 const std::int32_t* position_ids, const std::int32_t* seq_ids,
                                 const std::int32_t* kv_lens, std::int64_t count,
                                 std::int64_t kv_count, KernelErrorRecord* error) {
  __shared__ long long first_bad;
  if (threadIdx.x == 0) first_bad = count;
  __syncthreads();
  for (std::int64_t t = threadIdx.x; t < count; t += blockDim.x) {
    const std::int32_t seq = seq_ids[t];
    if (seq < 0 || seq >= kv_count) atomicMin(&first_bad, static_cast<long long>(t));
  }
  __syncthreads();
  const long long bad = first_bad;
  if (bad < count) {
    if (threadIdx.x == 0 && atomicCAS(&error->status, 0, 1) == 0) {
      error->token = static_cast<int>(bad);
      error->seq = seq_ids[bad];
      error->kv_count = kv_count;
    }
    __syncthreads();  // first_bad is read by every thread before a later op reuses it
    return;
  }
  for (std::int64_t t = threadIdx.x; t < count; t += blockDim.x) {
    out[t] = model_mix(input_ids[t], position_ids[t], kv_lens[seq_ids[t]]);
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kModelStepThreads)
    model_step_kernel(std::int32_t* out, const std::int32_t* input_ids,
                      const std::int32_t* position_ids, const std::int32_t* seq_ids,
                      const std::int32_t* kv_lens, std::int64_t count, std::int64_t kv_count,
                      KernelErrorRecord* error) {
  model_step_block(out, input_ids, position_ids, seq_ids, kv_lens, count, kv_count, error);
}

// One queued eager op (Note [eager batching]); counts fit kBatchElementsMax.
struct BatchedOp {
  std::int32_t* dst;
  const std::int32_t* src;
  const std::int32_t* positions;
  const std::int32_t* seq_ids;
  const std::int32_t* kv_lens;
  std::int32_t count;
  std::int32_t kv_count;
  std::int32_t value;
  OpKind kind;
  bool wave_end;  // a barrier follows: a later op of the batch depends on this wave
};

struct OpBatch {
  std::int32_t count;
  BatchedOp ops[kBatchOpsMax];
};
static_assert(sizeof(OpBatch) <= 4000, "a batch must fit the 4 KiB kernel parameter space");

__global__ void __launch_bounds__(kBatchThreads)
    batch_kernel(const __grid_constant__ OpBatch batch, KernelErrorRecord* error) {
  for (int k = 0; k < batch.count; ++k) {
    const BatchedOp& op = batch.ops[k];
    if (op.kind == OpKind::kModelStep) {
      model_step_block(op.dst, op.src, op.positions, op.seq_ids, op.kv_lens, op.count,
                       op.kv_count, error);
    } else {
      // Ops of one wave touch disjoint elements: no barrier between them, so
      // their memory accesses overlap in time.
      elementwise(op.kind, op.dst, op.src, op.count, op.value, threadIdx.x, blockDim.x);
      if (op.wave_end) __syncthreads();
    }
  }
}

inline unsigned int blocks_for(std::int64_t count) {
  return static_cast<unsigned int>(
      std::min<std::int64_t>((count + kThreadsPerBlock - 1) / kThreadsPerBlock, kBlocksMax));
}

}  // namespace capcheck::cuda_detail
