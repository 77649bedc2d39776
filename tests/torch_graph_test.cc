// The capture emulator (capcheck/torch_graph.h), one test per rule: each fails
// when its rule is removed from src/torch_graph/emulator.cc.
#include <ATen/ScalarOps.h>
#include <gtest/gtest.h>

#include <cstring>

#include "capcheck/errors.h"
#include "capcheck/torch_graph.h"

namespace capcheck {
namespace {

using torch_graph::CUDAGraph;

at::Tensor ints(std::vector<std::int32_t> values) {
  return torch::tensor(values, torch::kInt32);
}

std::vector<std::int32_t> values(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<std::int32_t>(c.data_ptr<std::int32_t>(), c.data_ptr<std::int32_t>() + c.numel());
}

BackendErrorKind kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const BackendError& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no BackendError thrown";
  return BackendErrorKind::kDevice;
}

TEST(TorchGraph, OpsAreRecordedNotExecuted) {
  at::Tensor kv = ints({12, 22});
  CUDAGraph graph;
  graph.capture_begin();
  kv.add_(1);
  graph.capture_end();
  EXPECT_EQ(values(kv), (std::vector<std::int32_t>{12, 22})) << "a capture changed device memory";
  ASSERT_EQ(graph.recorded_ops().size(), 1u);
  EXPECT_EQ(graph.recorded_ops()[0].rfind("aten::add_", 0), 0u);
}

TEST(TorchGraph, OutputsArePoisonedUntilAReplayComputesThem) {
  at::Tensor x = torch::ones({3});
  at::Tensor n = ints({1, 2});
  CUDAGraph graph;
  graph.capture_begin();
  at::Tensor y = x * 2;
  at::Tensor m = n + 1;
  graph.capture_end();
  EXPECT_TRUE(torch::isnan(y).all().item<bool>()) << y;
  for (std::int32_t v : values(m)) EXPECT_EQ(static_cast<std::uint32_t>(v), 0xA5A5A5A5u);
  graph.replay();
  EXPECT_TRUE(torch::equal(y, torch::full({3}, 2.0)));
  EXPECT_EQ(values(m), (std::vector<std::int32_t>{2, 3}));
}

TEST(TorchGraph, ViewsRunEagerlyAndAWriteThroughAViewLandsInTheBase) {
  at::Tensor pos = torch::zeros({1, 4}, torch::kInt32);
  at::Tensor off = ints({5, 6});
  CUDAGraph graph;
  graph.capture_begin();
  pos.slice(1, 2).add_(off);  // pos[0, 2:] += off
  graph.capture_end();
  EXPECT_EQ(graph.recorded_ops().size(), 1u) << "the slice must not be recorded";
  EXPECT_EQ(values(pos), (std::vector<std::int32_t>{0, 0, 0, 0}));
  graph.replay();
  EXPECT_EQ(values(pos), (std::vector<std::int32_t>{0, 0, 5, 6}));
}

TEST(TorchGraph, ReplaysAccumulateInPlaceUpdatesAndOutputsKeepTheirAddress) {
  // DESIGN's kv_lens-drift program: capture leaves kv_lens, each replay adds one.
  at::Tensor kv = ints({12, 22});
  CUDAGraph graph;
  graph.capture_begin();
  kv.add_(1);
  at::Tensor out = kv * 10;
  graph.capture_end();
  const void* address = out.data_ptr();
  graph.replay();
  EXPECT_EQ(values(kv), (std::vector<std::int32_t>{13, 23}));
  EXPECT_EQ(values(out), (std::vector<std::int32_t>{130, 230}));
  graph.replay();
  EXPECT_EQ(values(kv), (std::vector<std::int32_t>{14, 24}));
  EXPECT_EQ(values(out), (std::vector<std::int32_t>{140, 240}));
  EXPECT_EQ(out.data_ptr(), address);
}

TEST(TorchGraph, AnOpThatMayAliasButCopiesIsRecordedNotRunEagerly) {
  // `to` returns `Tensor(a)`: a view when nothing changes, a copy here. A
  // copy run at capture would bake the values of the capture.
  at::Tensor kv = ints({1, 2});
  CUDAGraph graph;
  graph.capture_begin();
  kv.add_(1);
  at::Tensor as_float = kv.to(torch::kFloat);
  at::Tensor same = kv.to(torch::kInt32);  // no copy: a true alias, not recorded
  graph.capture_end();
  EXPECT_TRUE(torch::isnan(as_float).all().item<bool>()) << as_float;
  EXPECT_EQ(same.data_ptr(), kv.data_ptr());
  graph.replay();
  graph.replay();
  EXPECT_TRUE(torch::equal(as_float, torch::tensor({3.0f, 4.0f}))) << as_float;
}

TEST(TorchGraph, HostValuesReadAtCaptureAreBaked) {
  at::Tensor kv = ints({1, 2});
  const std::int64_t offset = ints({7}).item<std::int64_t>();  // read before the capture
  std::int64_t step = 3;
  CUDAGraph graph;
  graph.capture_begin();
  kv.add_(step).add_(offset);
  graph.capture_end();
  step = 100;  // too late: the graph holds 3
  graph.replay();
  EXPECT_EQ(values(kv), (std::vector<std::int32_t>{11, 12}));
}

TEST(TorchGraph, AHostReadInvalidatesTheCaptureAndEndFailsWithNoGraph) {
  at::Tensor kv = ints({1, 2});
  CUDAGraph graph;
  graph.capture_begin();
  EXPECT_EQ(kind_of([&] { (void)kv.sum().item<std::int64_t>(); }),
            BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(kind_of([&] { kv.add_(1); }), BackendErrorKind::kCaptureInvalidated);
  EXPECT_EQ(kind_of([&] { graph.capture_end(); }), BackendErrorKind::kCaptureInvalidated);
  EXPECT_FALSE(torch_graph::is_current_stream_capturing());
  EXPECT_EQ(kind_of([&] { graph.replay(); }), BackendErrorKind::kIllegalState);
  EXPECT_EQ(values(kv), (std::vector<std::int32_t>{1, 2}));
}

TEST(TorchGraph, DataDependentShapesAndSynchronizeInvalidateTheCapture) {
  at::Tensor kv = ints({0, 2});
  {
    CUDAGraph graph;
    graph.capture_begin();
    EXPECT_EQ(kind_of([&] { (void)kv.nonzero(); }), BackendErrorKind::kCaptureUnsupported);
    EXPECT_EQ(kind_of([&] { graph.capture_end(); }), BackendErrorKind::kCaptureInvalidated);
  }
  CUDAGraph graph;
  graph.capture_begin();
  EXPECT_EQ(kind_of([] { torch_graph::synchronize(); }), BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(kind_of([&] { graph.capture_end(); }), BackendErrorKind::kCaptureInvalidated);
}

TEST(TorchGraph, RandomNumbersAreANamedError) {
  CUDAGraph graph;
  graph.capture_begin();
  try {
    (void)torch::rand({2});
    ADD_FAILURE() << "rand during capture did not fail";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("random number generation is not modelled"),
              std::string::npos) << e.what();
  }
  EXPECT_EQ(kind_of([&] { graph.capture_end(); }), BackendErrorKind::kCaptureInvalidated);
}

TEST(TorchGraph, AStorageFreedAfterCaptureIsDanglingAtReplay) {
  CUDAGraph graph;
  at::Tensor out;
  {
    at::Tensor input = ints({1, 2});
    graph.capture_begin();
    out = input + 1;
    graph.capture_end();
    graph.replay();  // fine while its owner holds it
  }
  EXPECT_EQ(kind_of([&] { graph.replay(); }), BackendErrorKind::kDanglingBuffer);
}

TEST(TorchGraph, AWrappedNumberOperandIsBakedNotDangling) {
  // Python's `kv + 2` passes 2 as a wrapped-number tensor that dies after the
  // call: a host value passed by value, as CUDA passes a scalar to a kernel.
  at::Tensor kv = ints({1, 2});
  CUDAGraph graph;
  at::Tensor out;
  graph.capture_begin();
  {
    at::Tensor two = c10::scalar_to_tensor(c10::Scalar(2));  // as Python's binding makes it
    two.unsafeGetTensorImpl()->set_wrapped_number(true);
    out = kv + two;
  }
  graph.capture_end();
  graph.replay();
  EXPECT_EQ(values(out), (std::vector<std::int32_t>{3, 4}));
}

TEST(TorchGraph, AStorageResizedAfterCaptureIsDanglingAtReplay) {
  at::Tensor workspace = ints({1, 2});
  CUDAGraph graph;
  graph.capture_begin();
  workspace.add_(1);
  graph.capture_end();
  workspace.resize_({4096});  // the attention-workspace-resize class
  EXPECT_EQ(kind_of([&] { graph.replay(); }), BackendErrorKind::kDanglingBuffer);
}

TEST(TorchGraph, FactoriesAndIndicesMadeInTheCaptureWork) {
  at::Tensor kv = ints({10, 20, 30});
  CUDAGraph graph;
  graph.capture_begin();
  at::Tensor index = torch::arange(2, torch::kLong);    // poisoned until replay...
  at::Tensor picked = kv.index_select(0, index + 1);   // ...but a valid index when shaped
  at::Tensor zeros = torch::zeros({2}, torch::kInt32);
  at::Tensor sum = picked + zeros;
  graph.capture_end();
  graph.replay();
  EXPECT_EQ(values(sum), (std::vector<std::int32_t>{20, 30}));
}

TEST(TorchGraph, NothingIsRecordedOutsideACapture) {
  at::Tensor kv = ints({1});
  CUDAGraph graph;
  graph.capture_begin();
  kv.add_(1);
  graph.capture_end();
  kv.add_(5);  // eager again
  EXPECT_EQ(values(kv), (std::vector<std::int32_t>{6}));
  EXPECT_EQ(graph.recorded_ops().size(), 1u);
  graph.replay();
  EXPECT_EQ(values(kv), (std::vector<std::int32_t>{7}));
}

TEST(TorchGraph, PoolsAndCaptureStateHaveTheCudaShape) {
  const auto pool = torch_graph::graph_pool_handle();
  CUDAGraph a, b;
  a.capture_begin(pool);
  EXPECT_TRUE(torch_graph::is_current_stream_capturing());
  EXPECT_EQ(kind_of([&] { b.capture_begin(pool); }), BackendErrorKind::kCaptureUnsupported);
  a.capture_end();
  EXPECT_EQ(a.pool(), pool);
  EXPECT_EQ(kind_of([&] { a.capture_begin(); }), BackendErrorKind::kIllegalState);
  a.reset();
  a.capture_begin();
  a.capture_end();
  EXPECT_NE(a.pool(), pool);
}

// Rule 6 (Note [shared pools]): a graph captured into a shared pool reuses a
// block of another graph of the pool that nothing but graphs holds any more,
// here an output whose owner kept only a non-owning alias of its address.
TEST(TorchGraph, ASharedPoolHandsAnUnheldOutputToTheNextCaptureAndItsReplayOverwritesIt) {
  const auto pool = torch_graph::graph_pool_handle();
  at::Tensor x = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f});
  at::Tensor y = torch::tensor({10.0f, 20.0f, 30.0f, 40.0f});
  CUDAGraph a, b;
  a.capture_begin(pool);
  at::Tensor out_a = x * 2;
  a.capture_end();
  // The weak-reference pattern: an alias that does not own the memory.
  const at::Tensor weak = torch::from_blob(out_a.data_ptr(), {4}, torch::kFloat32);
  out_a = at::Tensor();
  b.capture_begin(pool);
  at::Tensor out_b = y + 100;
  b.capture_end();
  EXPECT_EQ(out_b.data_ptr(), weak.data_ptr()) << "the free block was not reused";
  a.replay();
  EXPECT_TRUE(torch::equal(weak, x * 2));
  b.replay();
  EXPECT_TRUE(torch::equal(weak, y + 100)) << "graph B's replay did not land in A's block: " << weak;
}

TEST(TorchGraph, AHeldOutputAndPrivatePoolsAreNeverReused) {
  const auto pool = torch_graph::graph_pool_handle();
  at::Tensor x = torch::tensor({1.0f, 2.0f});
  CUDAGraph a, b, c, d;
  a.capture_begin(pool);
  at::Tensor held = x * 2;  // the engine keeps it
  a.capture_end();
  b.capture_begin(pool);
  at::Tensor other = x + 1;
  b.capture_end();
  EXPECT_NE(other.data_ptr(), held.data_ptr());
  a.replay();
  b.replay();
  EXPECT_TRUE(torch::equal(held, x * 2));

  c.capture_begin();  // private pools
  at::Tensor out_c = x * 3;
  c.capture_end();
  const void* address = out_c.data_ptr();
  out_c = at::Tensor();
  d.capture_begin();
  at::Tensor out_d = x * 4;
  d.capture_end();
  EXPECT_NE(out_d.data_ptr(), address);
}

// The WriteTrace names what last wrote a byte: eager ops as they run, and
// the recorded ops of an emulated replay with their place in the graph.
TEST(TorchGraph, AWriteTraceNamesTheLastWriterOfEachByte) {
  at::Tensor kv = ints({10, 20, 30});
  CUDAGraph graph;
  graph.capture_begin();
  kv.narrow(0, 1, 1).add_(5);
  graph.capture_end();
  torch_graph::WriteTrace trace;
  trace.start();
  trace.set_phase("eager");
  kv.narrow(0, 0, 1).sub_(1);
  trace.set_phase("replay");
  graph.replay();
  trace.stop();
  kv.narrow(0, 2, 1).add_(1);  // not traced
  const auto first = trace.last_write(kv.data_ptr<std::int32_t>());
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->op, "aten::sub_.Scalar");
  EXPECT_EQ(first->phase, "eager");
  const auto second = trace.last_write(kv.data_ptr<std::int32_t>() + 1);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->op, "aten::add_.Scalar");
  EXPECT_EQ(second->phase, "replay (graph op 1 of 1)");
  EXPECT_FALSE(trace.last_write(kv.data_ptr<std::int32_t>() + 2).has_value());
}

}  // namespace
}  // namespace capcheck
