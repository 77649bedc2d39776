// LibTorch capture code on capcheck's emulated CUDA graph, from a project
// outside capcheck's tree: the capture leaves kv_lens as it was, each replay
// adds one.
#include <gtest/gtest.h>

#include "capcheck/torch_graph.h"

namespace {

TEST(Consumer, EmulatedCaptureAndReplayOfLibTorchCode) {
  at::Tensor kv_lens = torch::tensor({12, 22}, torch::kInt32);
  capcheck::torch_graph::CUDAGraph graph(capcheck::torch_graph::GraphDevice::kEmulator);
  graph.capture_begin();
  kv_lens.add_(1);
  graph.capture_end();
  EXPECT_TRUE(torch::equal(kv_lens, torch::tensor({12, 22}, torch::kInt32)));
  graph.replay();
  graph.replay();
  EXPECT_TRUE(torch::equal(kv_lens, torch::tensor({14, 24}, torch::kInt32)));
}

}  // namespace
