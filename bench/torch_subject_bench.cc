// The LibTorch TensorRT-LLM runner (capcheck/torch_subject.h) under
// capture_preserves_inputs + first_replay_matches_eager, per case, against
// its floor: a bare LibTorch eager loop doing the same work with no capcheck.
// Both run on the same 256 generated scenarios (reference protocol), in turn.
//
// The floor, per case: upload the scenario into the runner's tensors (two
// copies of them: the graph side and the eager side), copy the persistent
// tensors (the snapshot), run each warmup forward and its restore, run the
// forward that stands for the capture, compare the persistent tensors with
// the copy, run the forward that stands for the replay, run the eager
// forward on the other copy, and compare the outputs. The same ops as the
// runner, written out here without the facade, the emulator or the
// properties.
//
// cuda:0 runs on CPU tensors (the emulator), cuda:1 on a GPU (at::cuda::CUDAGraph,
// skipped without one). explained:0 is how the runner checks cases while it
// searches and shrinks; explained:1 adds the WriteTrace that explains a
// reported failure.
#include <benchmark/benchmark.h>
#include <rapidcheck.h>

#include "capcheck/generators.h"
#include "capcheck/torch_subject.h"

namespace {

using namespace capcheck;

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> pool = [] {
    std::vector<Scenario> s;
    const rc::Gen<Scenario> gen = gen_scenario(GenOptions{});
    rc::Random random(2026);
    for (int i = 0; i < 256; ++i) s.push_back(gen(random.split(), i % 101).value());
    return s;
  }();
  return pool;
}

bool device_usable(benchmark::State& state, bool cuda) {
  if (cuda && !torch_graph::cuda_graphs_available()) {
    state.SkipWithError("no CUDA device");
    return false;
  }
  return true;
}

void report(benchmark::State& state) {
  state.counters["cases/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}

void BM_two_properties(benchmark::State& state) {
  const bool cuda = state.range(0) == 1;
  if (!device_usable(state, cuda)) return;
  auto subjects = make_torch_subjects(
      [](const TorchSubjectOptions& o) { return make_trtllm_torch_subject(o); },
      cuda ? torch::kCUDA : torch::kCPU);
  // As the runner checks cases (explanations only for a reported failure's re-check).
  subjects->set_explanations(state.range(1) == 1);
  std::size_t next = 0;
  std::int64_t failures = 0;
  for (auto _ : state) {
    const Scenario& s = scenarios()[next++ % scenarios().size()];
    failures += capture_preserves_inputs(*subjects, s).passed ? 0 : 1;
    failures += first_replay_matches_eager(*subjects, s).passed ? 0 : 1;
  }
  if (failures) state.SkipWithError("a property failed under the reference protocol");
  report(state);
}

// The runner's tensors and ops, written out plainly.
struct Bare {
  torch::Tensor input_ids, positions, static_ids, static_positions, seq_ids, kv, pos_off, kv_off,
      rejected, embedding, projection;
  Scenario s;
  std::int64_t tokens = 0, ctx = 0;

  explicit Bare(torch::Device d) {
    const auto i32 = torch::TensorOptions().dtype(torch::kInt32).device(d);
    for (torch::Tensor* t : {&input_ids, &static_ids, &seq_ids, &pos_off}) *t = torch::zeros({512}, i32);
    positions = torch::zeros({1, 512}, i32);
    static_positions = torch::zeros({1, 512}, i32);
    for (torch::Tensor* t : {&kv, &kv_off, &rejected}) *t = torch::zeros({256}, i32);
    const torch::Tensor rows = torch::arange(1024, torch::kFloat32);
    embedding = torch::stack({rows, torch::remainder(rows * 37, 101), torch::remainder(rows * 11, 13) - 6,
                              torch::remainder(rows, 7)}, 1).to(d);
    projection = torch::cat({torch::eye(7), torch::ones({7, 1})}, 1).to(d);
  }
  void prepare(const Scenario& scenario) {
    s = scenario;
    tokens = s.num_tokens();
    ctx = s.num_ctx_tokens();
    std::vector<std::int32_t> ids;
    for (std::int32_t q = 0; q < s.num_seqs(); ++q) ids.insert(ids.end(), static_cast<std::size_t>(s.seq_lens[q]), q);
    std::vector<std::int32_t> rej(static_cast<std::size_t>(s.num_generations));
    for (std::size_t g = 0; g < rej.size(); ++g) rej[g] = s.key.draft_len - s.num_accepted_tokens[g];
    // One host-to-device copy, then a device copy per tensor (as the runner does).
    const std::pair<torch::Tensor, const std::vector<std::int32_t>*> fields[] = {
        {input_ids, &s.input_ids}, {positions[0], &s.position_ids}, {kv, &s.kv_lens}, {seq_ids, &ids},
        {pos_off, &s.previous_pos_id_offsets}, {kv_off, &s.previous_kv_lens_offsets}, {rejected, &rej}};
    staging.clear();
    for (const auto& f : fields) staging.insert(staging.end(), f.second->begin(), f.second->end());
    const torch::Tensor staged =
        torch::from_blob(staging.data(), {static_cast<std::int64_t>(staging.size())}, torch::kInt32).to(kv.device());
    std::int64_t at = 0;
    for (const auto& [t, v] : fields) {
      const auto n = static_cast<std::int64_t>(v->size());
      if (n > 0) t.narrow(0, 0, n).copy_(staged.narrow(0, at, n));
      at += n;
    }
  }
  std::vector<std::int32_t> staging;
  void update(const torch::Tensor& pos, int sign) {
    auto apply = [&](torch::Tensor d, const torch::Tensor& src) {
      if (d.numel() == 0) return;
      if (sign > 0) d.add_(src); else d.sub_(src);
    };
    apply(pos.narrow(-1, ctx, tokens - ctx), pos_off.narrow(0, 0, tokens - ctx));
    if (s.num_chunked_ctx_requests > 0) {
      apply(kv.narrow(0, s.num_contexts - s.num_chunked_ctx_requests, s.num_chunked_ctx_requests),
            kv_off.narrow(0, 0, s.num_chunked_ctx_requests));
    } else {
      apply(kv.narrow(0, s.num_contexts, s.num_generations), kv_off.narrow(0, 0, s.num_generations));
    }
  }
  void draft(int sign) {
    if (!s.draft_loop) return;
    const std::int64_t nc = s.num_contexts, bs = s.num_seqs();
    auto step0 = [&] {
      torch::Tensor gen = kv.narrow(0, nc, bs - nc);
      if (gen.numel() > 0) {
        if (sign > 0) gen.sub_(rejected.narrow(0, 0, bs - nc)); else gen.add_(rejected.narrow(0, 0, bs - nc));
      }
      if (nc > 0) kv.narrow(0, 0, nc).add_(sign);
    };
    if (sign < 0) for (int k = 1; k < s.key.draft_len; ++k) kv.narrow(0, 0, bs).add_(sign);
    step0();
    if (sign > 0) for (int k = 1; k < s.key.draft_len; ++k) kv.narrow(0, 0, bs).add_(sign);
  }
  torch::Tensor forward(const torch::Tensor& ids_in, const torch::Tensor& pos) {
    update(pos, +1);
    const torch::Tensor ids = ids_in.narrow(0, 0, tokens);
    const torch::Tensor out =
        torch::cat({embedding.index_select(0, ids.remainder(1024)),
                    ids.div(1024, "floor").to(torch::kFloat32).unsqueeze(1),
                    pos.narrow(-1, 0, tokens).reshape({-1, tokens}).t().to(torch::kFloat32),
                    kv.index_select(0, seq_ids.narrow(0, 0, tokens)).to(torch::kFloat32).unsqueeze(1)},
                   1)
            .matmul(projection);
    draft(+1);
    return out;
  }
  std::vector<torch::Tensor> snapshot() const {
    return {input_ids.clone(), positions.clone(), static_ids.clone(), static_positions.clone(), kv.clone(),
            seq_ids.clone(), pos_off.clone(), kv_off.clone(), rejected.clone()};
  }
  bool same(const std::vector<torch::Tensor>& a) const {
    const torch::Tensor* now[] = {&input_ids, &positions, &static_ids, &static_positions, &kv,
                                  &seq_ids, &pos_off, &kv_off, &rejected};
    bool equal = true;
    for (std::size_t k = 0; k < a.size(); ++k) equal = equal && torch::equal(a[k], *now[k]);
    return equal;
  }
};

void BM_bare_eager_floor(benchmark::State& state) {
  const bool cuda = state.range(0) == 1;
  if (!device_usable(state, cuda)) return;
  torch::NoGradGuard no_grad;
  const torch::Device d = cuda ? torch::kCUDA : torch::kCPU;
  Bare graph_side(d), eager_side(d);
  std::size_t next = 0;
  std::int64_t failures = 0;
  for (auto _ : state) {
    const Scenario& s = scenarios()[next++ % scenarios().size()];
    // capture_preserves_inputs: snapshot, warmups (+ restore), "capture", compare.
    graph_side.prepare(s);
    const auto before = graph_side.snapshot();
    for (int w = 0; w < s.warmups_count; ++w) {
      (void)graph_side.forward(graph_side.static_ids, graph_side.static_positions);
      graph_side.draft(-1);
      graph_side.update(graph_side.static_positions, -1);
    }
    (void)graph_side.forward(graph_side.static_ids, graph_side.static_positions);
    graph_side.draft(-1);
    graph_side.update(graph_side.static_positions, -1);
    failures += graph_side.same(before) ? 0 : 1;
    // first_replay_matches_eager: the same again, then "replay" and eager.
    graph_side.prepare(s);
    for (int w = 0; w <= s.warmups_count; ++w) {
      (void)graph_side.forward(graph_side.static_ids, graph_side.static_positions);
      graph_side.draft(-1);
      graph_side.update(graph_side.static_positions, -1);
    }
    graph_side.static_ids.narrow(0, 0, graph_side.tokens).copy_(graph_side.input_ids.narrow(0, 0, graph_side.tokens));
    graph_side.static_positions.narrow(-1, 0, graph_side.tokens).copy_(graph_side.positions.narrow(-1, 0, graph_side.tokens));
    const torch::Tensor replayed = graph_side.forward(graph_side.static_ids, graph_side.static_positions);
    eager_side.prepare(s);
    const torch::Tensor expected = eager_side.forward(eager_side.input_ids, eager_side.positions);
    failures += torch::equal(replayed, expected) ? 0 : 1;
  }
  benchmark::DoNotOptimize(failures);
  report(state);
}

BENCHMARK(BM_two_properties)
    ->ArgNames({"cuda", "explained"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_bare_eager_floor)->ArgName("cuda")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
