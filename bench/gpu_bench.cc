// GPU throughput (docs/gpu.md): property cases per second on the cuda backend
// (with the sim alongside for scale), and a bare CUDA loop doing the same
// device work per case as the physical reference. Compiled by nvcc (the bare
// loop has its own kernels); built only with CAPCHECK_ENABLE_CUDA.
//
// One case of a property benchmark is one pre-generated scenario checked by
// that property on a reused Harness. One case of the bare loop is: upload the
// scenario's inputs, N warmups of preprocess + model + postprocess, capture of
// preprocess + model, instantiate, launch, read back the logits. Items/s
// (and the cases/s counter) are cases per second.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "capcheck/trtllm_subject.h"
#include "capcheck/cuda_backend.h"
#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "capcheck/detail/model.h"
#include "capcheck/properties.h"
#include "capcheck/sim_backend.h"
#include "capcheck/generators.h"

namespace capcheck {
namespace {

constexpr int kScenariosCount = 1024;
constexpr int kThreadsPerBlock = 256;

// Scenarios as `capcheck run` generates them (sizes cycling 0..100), reference protocol.
const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> all = [] {
    const rc::Gen<Scenario> generator = gen_scenario(GenOptions{});
    rc::Random random(0x9e3779b97f4a7c15ull);
    std::vector<Scenario> out;
    for (int i = 0; i < kScenariosCount; ++i) {
      out.push_back(generator(random.split(), i % 101).value());
    }
    return out;
  }();
  return all;
}

void set_rate(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations());
  state.counters["cases/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// ---------------------------------------------------------------------------
// Properties on a backend.

using BackendFactory = std::function<std::unique_ptr<Backend>()>;

// The scenarios that fit the harness's subjects to the largest sizes, then a
// few more to warm caches; the timed loop then allocates nothing.
std::vector<std::size_t> warmup_indices() {
  const auto& all = scenarios();
  std::size_t most_tokens = 0, most_seqs = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (all[i].num_tokens() > all[most_tokens].num_tokens()) most_tokens = i;
    if (all[i].num_seqs() > all[most_seqs].num_seqs()) most_seqs = i;
  }
  std::vector<std::size_t> indices = {most_tokens, most_seqs};
  for (std::size_t i = 0; i < 32 && i < all.size(); ++i) indices.push_back(i);
  return indices;
}

void run_properties(benchmark::State& state, const BackendFactory& factory,
                    const std::vector<PropertyFunction>& properties, bool profile) {
  std::unique_ptr<Backend> owned = factory();
  Backend* raw = owned.get();
  Harness harness(std::move(owned), make_trtllm_subject);
  const auto& all = scenarios();
  for (const std::size_t i : warmup_indices()) {
    for (PropertyFunction property : properties) (void)property(harness, all[i]);
  }
  if (profile) cuda_backend_set_profiling(*raw, true);
  std::size_t next = 0;
  for (auto _ : state) {
    const Scenario& scenario = all[next++ % all.size()];
    for (PropertyFunction property : properties) {
      const Verdict verdict = property(harness, scenario);
      if (!verdict.passed) {
        state.SkipWithError(("reference scenario failed: " + verdict.message).c_str());
        return;
      }
    }
  }
  set_rate(state);
  if (!profile) return;
  // Host microseconds per case in each backend call, and what is left for
  // the harness, the subject and the properties themselves.
  const double iterations = static_cast<double>(state.iterations());
  for (const CudaCallProfile& call : cuda_backend_profile(*raw)) {
    state.counters[call.call + " us"] = benchmark::Counter(call.seconds * 1e6 / iterations);
    state.counters[call.call + " n"] = benchmark::Counter(static_cast<double>(call.count) / iterations);
  }
  cuda_backend_set_profiling(*raw, false);
}

const std::vector<PropertyFunction> kCaptureProperty = {&capture_preserves_inputs};
const std::vector<PropertyFunction> kReplayProperty = {&first_replay_matches_eager};
const std::vector<PropertyFunction> kBothProperties = {&capture_preserves_inputs,
                                                       &first_replay_matches_eager};

// ---------------------------------------------------------------------------
// The bare CUDA loop: the TensorRT-LLM capture path written directly against
// the runtime, with nothing of capcheck in between.

#define BARE_CHECK(call)                                                              \
  do {                                                                                \
    const cudaError_t bare_error = (call);                                            \
    if (bare_error != cudaSuccess) {                                                  \
      throw BackendError(BackendErrorKind::kDevice, #call, cudaGetErrorString(bare_error), \
                         __FILE__, __LINE__);                                         \
    }                                                                                 \
  } while (false)

__global__ void bare_add(std::int32_t* dst, const std::int32_t* src, int count, int sign) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const std::uint32_t a = static_cast<std::uint32_t>(dst[i]);
  const std::uint32_t b = static_cast<std::uint32_t>(src[i]);
  dst[i] = static_cast<std::int32_t>(sign > 0 ? a + b : a - b);
}

__global__ void bare_model(std::int32_t* out, const std::int32_t* ids, const std::int32_t* positions,
                           const std::int32_t* seq_ids, const std::int32_t* kv_lens, int count) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < count) out[t] = model_mix(ids[t], positions[t], kv_lens[seq_ids[t]]);
}

// Device inputs of one scenario, packed: one upload per case.
struct BareLayout {
  std::int64_t ids, positions, seq_ids, kv_lens, pos_offsets, kv_offsets, logits, total;
};

class BareLoop {
 public:
  BareLoop() {
    std::int32_t tokens_max = 1, seqs_max = 1;
    for (const Scenario& s : scenarios()) {
      tokens_max = std::max(tokens_max, s.num_tokens());
      seqs_max = std::max(seqs_max, s.num_seqs());
    }
    layout_.ids = 0;
    layout_.positions = layout_.ids + tokens_max;
    layout_.seq_ids = layout_.positions + tokens_max;
    layout_.kv_lens = layout_.seq_ids + tokens_max;
    layout_.pos_offsets = layout_.kv_lens + seqs_max;
    layout_.kv_offsets = layout_.pos_offsets + tokens_max;
    layout_.logits = layout_.kv_offsets + seqs_max;
    layout_.total = layout_.logits + tokens_max;
    BARE_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BARE_CHECK(cudaMalloc(&device_, static_cast<std::size_t>(layout_.total) * sizeof(std::int32_t)));
    BARE_CHECK(cudaMemset(device_, 0, static_cast<std::size_t>(layout_.total) * sizeof(std::int32_t)));
    BARE_CHECK(cudaMallocHost(&host_, static_cast<std::size_t>(layout_.total) * sizeof(std::int32_t)));
    // Host images of every scenario, packed ahead (the property runs build
    // theirs from the scenario too, but on the host side of prepare()).
    for (const Scenario& s : scenarios()) packed_.push_back(pack(s));
  }
  ~BareLoop() {
    cudaFreeHost(host_);
    cudaFree(device_);
    cudaStreamDestroy(stream_);
  }

  // One case; returns the first logit so the work cannot be optimized away.
  std::int32_t run(std::size_t index) {
    const Scenario& s = scenarios()[index];
    const std::vector<std::int32_t>& image = packed_[index];
    const int tokens = s.num_tokens();
    std::memcpy(host_, image.data(), image.size() * sizeof(std::int32_t));
    BARE_CHECK(cudaMemcpyAsync(device_, host_, image.size() * sizeof(std::int32_t),
                               cudaMemcpyHostToDevice, stream_));
    for (int w = 0; w < s.warmups_count; ++w) {
      update(s, +1);
      model(tokens);
      update(s, -1);
    }
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    BARE_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    update(s, +1);
    model(tokens);
    BARE_CHECK(cudaStreamEndCapture(stream_, &graph));
    BARE_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    BARE_CHECK(cudaGraphLaunch(exec, stream_));
    BARE_CHECK(cudaMemcpyAsync(host_, at(layout_.logits), static_cast<std::size_t>(tokens) * sizeof(std::int32_t),
                               cudaMemcpyDeviceToHost, stream_));
    BARE_CHECK(cudaStreamSynchronize(stream_));
    BARE_CHECK(cudaGraphExecDestroy(exec));
    BARE_CHECK(cudaGraphDestroy(graph));
    return host_[0];
  }

 private:
  std::int32_t* at(std::int64_t offset) const { return device_ + offset; }

  std::vector<std::int32_t> pack(const Scenario& s) const {
    std::vector<std::int32_t> image(static_cast<std::size_t>(layout_.logits), 0);
    auto put = [&](std::int64_t offset, const std::vector<std::int32_t>& values) {
      std::copy(values.begin(), values.end(), image.begin() + offset);
    };
    put(layout_.ids, s.input_ids);
    put(layout_.positions, s.position_ids);
    std::vector<std::int32_t> seq_ids;
    for (std::int32_t seq = 0; seq < s.num_seqs(); ++seq) {
      seq_ids.insert(seq_ids.end(), static_cast<std::size_t>(s.seq_lens[seq]), seq);
    }
    put(layout_.seq_ids, seq_ids);
    put(layout_.kv_lens, s.kv_lens);
    put(layout_.pos_offsets, s.previous_pos_id_offsets);
    put(layout_.kv_offsets, s.previous_kv_lens_offsets);
    return image;
  }

  void add(std::int64_t dst, std::int64_t src, int count, int sign) {
    if (count == 0) return;
    bare_add<<<(count + kThreadsPerBlock - 1) / kThreadsPerBlock, kThreadsPerBlock, 0, stream_>>>(
        at(dst), at(src), count, sign);
    BARE_CHECK(cudaGetLastError());
  }

  // _preprocess_inputs (+1) / _postprocess_inputs (-1), as the subject issues them.
  void update(const Scenario& s, int sign) {
    const int tokens = s.num_tokens();
    const int ctx_tokens = s.num_ctx_tokens();
    add(layout_.positions + ctx_tokens, layout_.pos_offsets, tokens - ctx_tokens, sign);
    if (s.num_chunked_ctx_requests > 0) {
      add(layout_.kv_lens + s.num_contexts - s.num_chunked_ctx_requests, layout_.kv_offsets,
          s.num_chunked_ctx_requests, sign);
    } else {
      add(layout_.kv_lens + s.num_contexts, layout_.kv_offsets,
          std::min(s.num_generations, s.kv_offsets_count()), sign);
    }
  }

  void model(int tokens) {
    bare_model<<<(tokens + kThreadsPerBlock - 1) / kThreadsPerBlock, kThreadsPerBlock, 0, stream_>>>(
        at(layout_.logits), at(layout_.ids), at(layout_.positions), at(layout_.seq_ids),
        at(layout_.kv_lens), tokens);
    BARE_CHECK(cudaGetLastError());
  }

  BareLayout layout_{};
  cudaStream_t stream_ = nullptr;
  std::int32_t* device_ = nullptr;
  std::int32_t* host_ = nullptr;
  std::vector<std::vector<std::int32_t>> packed_;
};

void bare_cuda_loop(benchmark::State& state) {
  BareLoop loop;
  for (const std::size_t i : warmup_indices()) (void)loop.run(i);
  std::size_t next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(loop.run(next++ % scenarios().size()));
  }
  set_rate(state);
}

void register_benchmarks() {
  const BackendFactory cuda = [] { return make_cuda_backend(); };
  const BackendFactory cuda_unbatched = [] {
    auto backend = make_cuda_backend();
    cuda_backend_set_eager_batching(*backend, false);
    return backend;
  };
  const BackendFactory sim = [] { return make_sim_backend(); };
  struct Case {
    const char* name;
    const std::vector<PropertyFunction>* properties;
  };
  const Case cases[] = {{"capture_preserves_inputs", &kCaptureProperty},
                        {"first_replay_matches_eager", &kReplayProperty},
                        {"both", &kBothProperties}};
  for (const Case& c : cases) {
    benchmark::RegisterBenchmark((std::string("cuda/") + c.name).c_str(),
                                 [=](benchmark::State& state) {
                                   run_properties(state, cuda, *c.properties, false);
                                 })
        ->UseRealTime();
  }
  // The same, one kernel launch per eager op (Note [eager batching] off).
  benchmark::RegisterBenchmark("cuda_unbatched/both", [=](benchmark::State& state) {
    run_properties(state, cuda_unbatched, kBothProperties, false);
  })->UseRealTime();
  benchmark::RegisterBenchmark("bare_cuda_loop", bare_cuda_loop)->UseRealTime();
  for (const Case& c : cases) {
    benchmark::RegisterBenchmark((std::string("sim/") + c.name).c_str(),
                                 [=](benchmark::State& state) {
                                   run_properties(state, sim, *c.properties, false);
                                 })
        ->UseRealTime();
  }
  // Where a case's host time goes, per backend call (profiling on: slightly slower).
  benchmark::RegisterBenchmark("cuda/both/profiled", [=](benchmark::State& state) {
    run_properties(state, cuda, kBothProperties, true);
  })->UseRealTime();
}

}  // namespace
}  // namespace capcheck

int main(int argc, char** argv) {
  std::string why;
  if (!capcheck::cuda_device_available(&why)) {
    std::printf("gpu_bench: skipped: %s\n", why.c_str());
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("device", capcheck::cuda_backend_description());
  capcheck::register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
