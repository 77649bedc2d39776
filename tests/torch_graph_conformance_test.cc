// One capture-rule suite for the graph facade, on the emulator (CPU tensors)
// and on at::cuda::CUDAGraph (CUDA tensors; skipped without a GPU), and the
// bitwise agreement over generated op programs:
//   - on every machine: the emulator's replays equal the same program run
//     eagerly, replay for replay, and its capture leaves memory unchanged;
//   - on a GPU: every buffer and output of the emulator and of a CUDA graph
//     are bitwise identical after each replay.
// The programs mix int32 and float32 tensors, views (slices, a transpose),
// in-place and out-of-place ops, gathers with indices computed inside the
// capture, and outputs kept across replays. Float values are small integers
// and every op keeps them so (products reduced modulo 97), so each float
// result is exact whatever order a kernel sums in: that is what makes a
// bitwise comparison of float buffers between different kernels (MKL or
// OpenBLAS on the CPU, cuBLAS on the GPU) meaningful. Programs with inexact
// float arithmetic are not compared across devices: their bit patterns may
// legitimately differ by rounding.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <random>
#include <sstream>

#include "capcheck/errors.h"
#include "capcheck/torch_graph.h"

namespace capcheck {
namespace {

namespace tg = torch_graph;

struct Device {
  std::string name;
  torch::Device device;
  tg::GraphDevice graphs;
};

Device emulator() { return {"emulator", torch::kCPU, tg::GraphDevice::kEmulator}; }
Device cuda() { return {"cuda", torch::kCUDA, tg::GraphDevice::kCuda}; }

BackendErrorKind kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return tg::capture_error_kind(e);
  }
  ADD_FAILURE() << "nothing was thrown";
  return BackendErrorKind::kDevice;
}

class GraphRules : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda") {
      std::string why;
      if (!tg::cuda_graphs_available(&why)) GTEST_SKIP() << why;
    }
    d_ = GetParam() == "cuda" ? cuda() : emulator();
    stream_ = tg::getStreamFromPool(d_.graphs);
  }
  torch::Tensor ints(std::vector<std::int32_t> v) const {
    return torch::tensor(v, torch::kInt32).to(d_.device);
  }
  std::vector<std::int32_t> host(const torch::Tensor& t) const {
    const torch::Tensor c = t.to(torch::kCPU).contiguous();
    return {c.data_ptr<std::int32_t>(), c.data_ptr<std::int32_t>() + c.numel()};
  }
  // Captures `body` into `graph` on the capture stream.
  void capture(tg::CUDAGraph& graph, const std::function<void()>& body,
               tg::MempoolId_t pool = {0, 0}) {
    tg::StreamGuard guard(stream_);
    graph.capture_begin(pool);
    body();
    graph.capture_end();
  }
  // Captures `body`, which must fail; returns the kinds of its error and of capture_end.
  std::pair<BackendErrorKind, BackendErrorKind> illegal_capture(const std::function<void()>& body) {
    tg::CUDAGraph graph(d_.graphs);
    tg::StreamGuard guard(stream_);
    graph.capture_begin();
    const BackendErrorKind during = kind_of(body);
    const BackendErrorKind end = kind_of([&] { graph.capture_end(); });
    return {during, end};
  }

  Device d_ = emulator();
  tg::CaptureStream stream_;
};

TEST_P(GraphRules, ACaptureLeavesMemoryUnchangedAndReplaysAccumulate) {
  torch::Tensor kv = ints({12, 22});
  tg::CUDAGraph graph(d_.graphs);
  torch::Tensor out;
  capture(graph, [&] {
    kv.add_(1);
    out = kv * 2;
  });
  EXPECT_EQ(host(kv), (std::vector<std::int32_t>{12, 22}));
  const void* address = out.data_ptr();
  graph.replay();
  EXPECT_EQ(host(kv), (std::vector<std::int32_t>{13, 23}));
  EXPECT_EQ(host(out), (std::vector<std::int32_t>{26, 46}));
  graph.replay();
  EXPECT_EQ(host(kv), (std::vector<std::int32_t>{14, 24}));
  EXPECT_EQ(host(out), (std::vector<std::int32_t>{28, 48}));
  EXPECT_EQ(out.data_ptr(), address);
}

TEST_P(GraphRules, AWriteThroughAViewLandsInTheBase) {
  torch::Tensor pos = ints({0, 1, 2, 3, 4, 5}).reshape({1, 6});
  torch::Tensor offsets = ints({10, 10});
  tg::CUDAGraph graph(d_.graphs);
  capture(graph, [&] { pos.narrow(1, 4, 2).add_(offsets); });
  graph.replay();
  EXPECT_EQ(host(pos), (std::vector<std::int32_t>{0, 1, 2, 3, 14, 15}));
}

TEST_P(GraphRules, HostValuesReadBeforeTheCaptureAreBaked) {
  torch::Tensor kv = ints({5, 6});
  const std::int32_t step = kv[0].item<std::int32_t>();  // 5, read before the capture
  tg::CUDAGraph graph(d_.graphs);
  capture(graph, [&] { kv.add_(step); });
  kv.fill_(0);
  graph.replay();
  EXPECT_EQ(host(kv), (std::vector<std::int32_t>{5, 5}));
}

TEST_P(GraphRules, AHostReadDuringCaptureIs900AndEndingTheCaptureIs901) {
  torch::Tensor kv = ints({1, 2});
  const auto item = illegal_capture([&] { (void)kv.sum().item<std::int32_t>(); });
  EXPECT_EQ(item.first, BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(item.second, BackendErrorKind::kCaptureInvalidated);
  const auto nonzero = illegal_capture([&] { (void)torch::nonzero(kv); });
  EXPECT_EQ(nonzero.first, BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(nonzero.second, BackendErrorKind::kCaptureInvalidated);
  const auto sync = illegal_capture([&] { tg::synchronize(); });
  EXPECT_EQ(sync.first, BackendErrorKind::kCaptureUnsupported);
}

// Rule 6, the same outcome on both: an output kept only through a non-owning
// alias is memory the next capture into the pool may take.
TEST_P(GraphRules, ASharedPoolReusesAnOutputNothingOwnsAndAnOwnedOneNever) {
  const tg::MempoolId_t pool = tg::graph_pool_handle(d_.graphs);
  torch::Tensor x = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).to(d_.device);
  tg::CUDAGraph a(d_.graphs), b(d_.graphs), c(d_.graphs);
  torch::Tensor out_a, out_b, out_c;
  capture(a, [&] { out_a = x * 2; }, pool);
  const torch::Tensor weak = torch::from_blob(out_a.data_ptr(), {4}, out_a.options());
  out_a = torch::Tensor();
  capture(b, [&] { out_b = x + 100; }, pool);
  EXPECT_EQ(out_b.data_ptr(), weak.data_ptr());
  capture(c, [&] { out_c = x - 1; }, pool);  // out_b is owned: never reused
  EXPECT_NE(out_c.data_ptr(), out_b.data_ptr());
  a.replay();
  b.replay();
  c.replay();
  EXPECT_TRUE(torch::equal(weak.to(torch::kCPU), torch::tensor({101.0f, 102.0f, 103.0f, 104.0f})));
  EXPECT_TRUE(torch::equal(out_c.to(torch::kCPU), torch::tensor({0.0f, 1.0f, 2.0f, 3.0f})));
}

INSTANTIATE_TEST_SUITE_P(Devices, GraphRules, ::testing::Values("emulator", "cuda"),
                         [](const auto& info) { return info.param; });

// ---- generated op programs ------------------------------------------------

// Three int32 vectors of 8 and two float32 4x4 matrices, all small integers.
struct State {
  std::vector<torch::Tensor> ints, floats;
  std::vector<torch::Tensor> outputs;  // functional results, kept
};

State initial_state(std::uint64_t seed, torch::Device device) {
  std::mt19937_64 random(seed);
  State s;
  for (int k = 0; k < 3; ++k) {
    std::vector<std::int32_t> v(8);
    for (auto& x : v) x = static_cast<std::int32_t>(random() % 50);
    s.ints.push_back(torch::tensor(v, torch::kInt32).to(device));
  }
  for (int k = 0; k < 2; ++k) {
    std::vector<float> v(16);
    for (auto& x : v) x = static_cast<float>(random() % 10);
    s.floats.push_back(torch::tensor(v).reshape({4, 4}).to(device));
  }
  return s;
}

struct Step {
  int op, a, b, c, start, length, scalar;
};
using Program = std::vector<Step>;

Program make_program(std::uint64_t seed) {
  std::mt19937_64 random(seed * 7919 + 1);
  Program p(2 + random() % 10);
  for (auto& s : p) {
    s.op = static_cast<int>(random() % 10);
    s.a = static_cast<int>(random() % 3);
    s.b = static_cast<int>(random() % 3);
    s.c = static_cast<int>(random() % 2);
    s.length = 1 + static_cast<int>(random() % 4);
    s.start = static_cast<int>(random() % static_cast<std::uint64_t>(9 - s.length));
    s.scalar = static_cast<int>(random() % 7) - 3;
    // An in-place op whose source partly overlaps what it writes is refused
    // by LibTorch on every device: such pairs are not generated.
    if (s.a == s.b && (s.op == 0 || s.op == 3 || s.op == 9)) s.b = (s.a + 1) % 3;
  }
  return p;
}

std::string describe(const Step& s) {
  static const char* names[] = {"narrow add_",  "scalar add_",        "remainder_",
                                "narrow copy_", "index_select out",   "cumsum out",
                                "add an output", "float matmul mod 97", "transposed add_",
                                "index_add_"};
  std::ostringstream out;
  out << names[s.op] << "(a=" << s.a << " b=" << s.b << " c=" << s.c << " start=" << s.start
      << " length=" << s.length << " scalar=" << s.scalar << ")";
  return out.str();
}

// Issues the program's ops: eagerly, or into an open capture.
void run_program(const Program& program, State& s) {
  for (const Step& step : program) {
    torch::Tensor& a = s.ints[step.a];
    const torch::Tensor& b = s.ints[step.b];
    switch (step.op) {
      case 0: a.narrow(0, step.start, step.length).add_(b.narrow(0, 8 - step.length, step.length)); break;
      case 1: a.add_(step.scalar); break;
      case 2: a.remainder_(97); break;
      case 3: a.narrow(0, step.start, step.length).copy_(b.narrow(0, 0, step.length)); break;
      case 4: s.outputs.push_back(a.index_select(0, torch::remainder(b, 8))); break;
      case 5: s.outputs.push_back(torch::remainder(torch::cumsum(a, 0, torch::kInt32), 1000)); break;
      case 6:
        if (!s.outputs.empty() && s.outputs.back().scalar_type() == torch::kInt32 &&
            s.outputs.back().numel() == 8) {
          a.add_(s.outputs.back());
        } else {
          a.sub_(b);
        }
        break;
      case 7: {
        torch::Tensor& f = s.floats[step.c];
        f.copy_(torch::remainder(f.matmul(s.floats[1 - step.c]), 97));
        s.outputs.push_back(f * 2);
        break;
      }
      case 8: s.floats[step.c].t().add_(s.floats[1 - step.c]).remainder_(97); break;
      case 9: a.index_add_(0, torch::remainder(b, 8).to(torch::kLong), b); a.remainder_(1000); break;
    }
  }
}

// Every buffer and output of a state: host copies of their values now.
std::vector<torch::Tensor> observe(const State& s) {
  std::vector<torch::Tensor> all;
  for (const auto* list : {&s.ints, &s.floats, &s.outputs}) {
    for (const auto& t : *list) all.push_back(t.to(torch::kCPU).contiguous().clone());  // a copy, never an alias
  }
  return all;
}

// "" when bitwise equal, else where they first differ.
std::string first_difference(const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& y) {
  if (x.size() != y.size()) return "different numbers of tensors";
  for (std::size_t k = 0; k < x.size(); ++k) {
    const auto bytes = static_cast<std::size_t>(x[k].numel()) * x[k].element_size();
    if (x[k].sizes() != y[k].sizes() || std::memcmp(x[k].data_ptr(), y[k].data_ptr(), bytes) != 0) {
      std::ostringstream out;
      out << "tensor " << k << ": " << x[k] << " vs " << y[k];
      return out.str();
    }
  }
  return "";
}

// The observations after capture (replay 0) and after each of `replays`.
std::vector<std::vector<torch::Tensor>> captured_run(const Program& program, std::uint64_t seed,
                                                     const Device& d, int replays) {
  State s = initial_state(seed, d.device);
  tg::CUDAGraph graph(d.graphs);
  {
    tg::StreamGuard guard(tg::getStreamFromPool(d.graphs));
    if (d.graphs == tg::GraphDevice::kCuda) {
      // A warmup on the capture stream, as PyTorch asks before a capture
      // (cuBLAS creates its handle on first use, which a capture refuses).
      State scratch = initial_state(seed, d.device);
      run_program(program, scratch);
    }
    graph.capture_begin();
    run_program(program, s);
    graph.capture_end();
  }
  std::vector<std::vector<torch::Tensor>> seen;
  State before = s;
  before.outputs.clear();
  seen.push_back(observe(before));  // the buffers only: outputs are not computed yet
  for (int r = 0; r < replays; ++r) {
    graph.replay();
    seen.push_back(observe(s));
  }
  return seen;
}

std::vector<std::vector<torch::Tensor>> eager_run(const Program& program, std::uint64_t seed,
                                                  int replays) {
  State s = initial_state(seed, torch::kCPU);
  std::vector<std::vector<torch::Tensor>> seen;
  seen.push_back(observe(s));
  for (int r = 0; r < replays; ++r) {
    s.outputs.clear();
    run_program(program, s);
    seen.push_back(observe(s));
  }
  return seen;
}

std::string listing(const Program& program) {
  std::string text;
  for (const Step& s : program) text += "  " + describe(s) + "\n";
  return text;
}

int programs() {
  const char* value = std::getenv("CAPCHECK_GRAPH_PROGRAMS");
  return value && *value ? std::atoi(value) : 500;
}

TEST(GeneratedPrograms, EmulatedReplaysEqualEagerRunsAndCaptureChangesNothing) {
  for (std::uint64_t seed = 1; seed <= static_cast<std::uint64_t>(programs()); ++seed) {
    const Program program = make_program(seed);
    const int replays = 1 + static_cast<int>(seed % 3);
    const auto captured = captured_run(program, seed, emulator(), replays);
    const auto eager = eager_run(program, seed, replays);
    for (int r = 0; r <= replays; ++r) {
      const std::string diff = first_difference(eager[r], captured[r]);
      ASSERT_EQ(diff, "") << "program " << seed << ", after " << (r == 0 ? "capture" : "replay " + std::to_string(r))
                          << ":\n" << listing(program);
    }
  }
}

TEST(GeneratedPrograms, EmulatorAndCudaGraphsAgreeBitwise) {
  std::string why;
  if (!tg::cuda_graphs_available(&why)) GTEST_SKIP() << why;
  for (std::uint64_t seed = 1; seed <= static_cast<std::uint64_t>(programs()); ++seed) {
    const Program program = make_program(seed);
    const int replays = 1 + static_cast<int>(seed % 3);
    const auto on_cpu = captured_run(program, seed, emulator(), replays);
    const auto on_gpu = captured_run(program, seed, cuda(), replays);
    // After capture the buffers must be unchanged on both; after each replay equal.
    for (int r = 0; r <= replays; ++r) {
      const std::string diff = first_difference(on_cpu[r], on_gpu[r]);
      ASSERT_EQ(diff, "") << "program " << seed << ", after " << (r == 0 ? "capture" : "replay " + std::to_string(r))
                          << ":\n" << listing(program);
    }
  }
}

}  // namespace
}  // namespace capcheck
