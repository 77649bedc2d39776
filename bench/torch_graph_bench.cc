// The capture emulator's cost (capcheck/torch_graph.h) against its floor.
// One case is what capture_preserves_inputs + first_replay_matches_eager do
// to a small TensorRT-LLM-like LibTorch program: snapshot the persistent
// tensors, capture the program, check the capture left them unchanged,
// replay it, and compare the replay with an eager run. The floor runs the
// same program eagerly the same number of times (capture and replay each
// stand for one run), with the same snapshots and comparisons, and no
// capcheck. Report: cases/s of each and their ratio (same run).
#include <benchmark/benchmark.h>

#include <torch/torch.h>

#include "capcheck/torch_graph.h"

namespace {

struct Program {
  static constexpr int kBatch = 8, kTokens = 16, kHidden = 32, kVocab = 128;
  at::Tensor kv_lens = torch::arange(kBatch, torch::kInt32) * 10 + 5;
  at::Tensor kv_offsets = torch::ones({kBatch}, torch::kInt32);
  at::Tensor positions = torch::arange(kTokens, torch::kInt32).reshape({1, kTokens});
  at::Tensor position_offsets = torch::ones({kTokens / 2}, torch::kInt32);
  at::Tensor input_ids = torch::arange(kTokens, torch::kLong) % kVocab;
  at::Tensor embedding = torch::linspace(-1, 1, kVocab * kHidden).reshape({kVocab, kHidden});
  at::Tensor weight = torch::linspace(1, -1, kHidden * kHidden).reshape({kHidden, kHidden});

  // preprocess (slicing updates) + a small float model reading positions and kv_lens.
  at::Tensor forward() {
    kv_lens.add_(kv_offsets);
    positions.slice(1, kTokens / 2).add_(position_offsets);
    at::Tensor x = embedding.index_select(0, input_ids);
    x = x + positions[0].to(torch::kFloat).unsqueeze(1) * 0.01;
    x = torch::matmul(x, weight);
    return x + kv_lens.sum().to(torch::kFloat) * 0.001;
  }
  void postprocess() {
    kv_lens.sub_(kv_offsets);
    positions.slice(1, kTokens / 2).sub_(position_offsets);
  }
  std::vector<at::Tensor> snapshot() const { return {kv_lens.clone(), positions.clone()}; }
  bool same(const std::vector<at::Tensor>& a) const {
    return torch::equal(a[0], kv_lens) && torch::equal(a[1], positions);
  }
};

void BM_emulator_capture_and_replay(benchmark::State& state) {
  Program p;
  torch::NoGradGuard no_grad;
  std::int64_t failures = 0;
  for (auto _ : state) {
    const auto before = p.snapshot();
    capcheck::torch_graph::CUDAGraph graph;
    graph.capture_begin();
    at::Tensor out = p.forward();
    graph.capture_end();
    failures += !p.same(before);   // capture_preserves_inputs
    graph.replay();
    const at::Tensor replayed = out.clone();
    p.postprocess();
    const at::Tensor eager = p.forward();
    p.postprocess();
    failures += !torch::equal(replayed, eager);  // first_replay_matches_eager
  }
  if (failures) state.SkipWithError("a property failed");
  state.counters["cases/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}

void BM_bare_eager_floor(benchmark::State& state) {
  Program p;
  torch::NoGradGuard no_grad;
  std::int64_t failures = 0;
  for (auto _ : state) {
    const auto before = p.snapshot();
    at::Tensor out = p.forward();  // stands for the capture
    p.postprocess();
    failures += !p.same(before);
    out = p.forward();             // stands for the replay
    const at::Tensor replayed = out.clone();
    p.postprocess();
    const at::Tensor eager = p.forward();
    p.postprocess();
    failures += !torch::equal(replayed, eager);
  }
  if (failures) state.SkipWithError("the floor's own comparison failed");
  state.counters["cases/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}

BENCHMARK(BM_emulator_capture_and_replay);
BENCHMARK(BM_bare_eager_floor);

}  // namespace

BENCHMARK_MAIN();
