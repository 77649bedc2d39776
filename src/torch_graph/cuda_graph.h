// The CUDA half of the graph facade (Note [the facade on CUDA] in
// cuda_graph.cc): at::cuda::CUDAGraph, its pools and streams. Built with a
// LibTorch that has CUDA; elsewhere every function says CUDA is unavailable.
#pragma once

#include <memory>
#include <string>

#include "capcheck/torch_graph.h"

namespace capcheck::torch_graph {

class RealGraph {
 public:
  virtual ~RealGraph() = default;
  virtual void capture_begin(MempoolId_t pool) = 0;
  virtual void capture_end() = 0;
  virtual void replay() = 0;
  virtual void reset() = 0;
};

std::unique_ptr<RealGraph> make_real_graph();
MempoolId_t real_graph_pool_handle();
/// True while the current CUDA stream captures (false without CUDA).
bool real_capture_active();
/// A device synchronization when CUDA is in use; its capture error as a BackendError.
void real_synchronize();
c10::Stream real_stream_from_pool();
/// Makes `capture` current, after the current stream's work; returns the previous stream.
c10::Stream enter_real_stream(const c10::Stream& capture);
/// Restores `previous`, ordered after `capture`'s work.
void exit_real_stream(const c10::Stream& previous, const c10::Stream& capture);

}  // namespace capcheck::torch_graph
