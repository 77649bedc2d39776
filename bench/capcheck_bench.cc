// Cases per second of each property on the host backends, the full RapidCheck
// loop (generation + property), and RapidCheck's own floor for comparison.
//   ./build/dev/bench/capcheck_bench --benchmark_filter=sim
#include <benchmark/benchmark.h>
#include <rapidcheck.h>

#include "capcheck/trtllm_subject.h"
#include "capcheck/registry.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/runner.h"
#include <map>

namespace capcheck {
namespace {

constexpr int kScenarioPoolSize = 1024;

// A fixed pool of generated scenarios, sizes cycling as in a RapidCheck run.
const std::vector<Scenario>& scenario_pool(Protocol protocol) {
  static std::map<Protocol, std::vector<Scenario>> pools;
  auto& pool = pools[protocol];
  if (pool.empty()) {
    GenOptions options;
    options.protocol = protocol;
    const auto generator = gen_scenario(options);
    rc::Random random(42);
    for (int i = 0; i < kScenarioPoolSize; ++i) {
      pool.push_back(generator(random.split(), i % 101).value());
    }
  }
  return pool;
}

// One property on pre-generated scenarios: the cost of the property itself.
void property_cases(benchmark::State& state, const char* backend, const char* property) {
  Harness harness(make_backend(backend), make_trtllm_subject);
  const PropertyInfo& info = find_property(property);
  const auto& pool = scenario_pool(Protocol::kReference);
  std::size_t i = 0;
  for (auto _ : state) {
    const Verdict verdict = check_property(info, harness, pool[i++ % pool.size()]);
    benchmark::DoNotOptimize(verdict.passed);
    if (!verdict.passed) state.SkipWithError("reference protocol violated a property");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("cases/s = items_per_second");
}

// The whole RapidCheck loop: generate, run, (no shrinking: all pass).
void rapidcheck_loop(benchmark::State& state, const char* backend, const char* property) {
  Harness harness(make_backend(backend), make_trtllm_subject);
  RunConfig config;
  config.cases = 1000;
  std::uint64_t seed = 1;
  for (auto _ : state) {
    config.seed = seed++;
    const RunResult result = run_property(harness, find_property(property), config);
    if (!result.passed) state.SkipWithError("reference protocol violated a property");
  }
  state.SetItemsProcessed(state.iterations() * config.cases);
}

// RapidCheck's floor: a property that generates one int and asserts nothing.
void rapidcheck_trivial(benchmark::State& state) {
  rc::detail::TestParams params;
  params.maxSuccess = 1000;
  for (auto _ : state) {
    params.seed++;
    const auto result = rc::detail::checkProperty(
        rc::detail::toProperty([] { benchmark::DoNotOptimize(*rc::gen::arbitrary<int>()); }),
        rc::detail::TestMetadata{}, params);
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations() * params.maxSuccess);
}

void generation_only(benchmark::State& state) {
  const auto generator = gen_scenario(GenOptions{});
  rc::Random random(7);
  int size = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(generator(random.split(), size++ % 101).value());
  }
  state.SetItemsProcessed(state.iterations());
}

void register_all() {
  std::vector<std::string> backends;
  for (const auto& b : list_backends()) {
    if (b.available && b.name != "cuda") backends.push_back(b.name);
  }
  static std::vector<std::string> names;  // keep c_str()s alive
  names.reserve(64);
  for (const auto& backend : backends) {
    names.push_back(backend);
    const char* b = names.back().c_str();
    for (const auto& p : all_properties()) {
      if (p.canary || p.name == "backends_agree") continue;  // needs peers; a ratio, not a rate
      benchmark::RegisterBenchmark(("property/" + backend + "/" + std::string(p.name)).c_str(),
                                   property_cases, b, p.name.data());
    }
    benchmark::RegisterBenchmark(("rapidcheck_loop/" + backend + "/capture_preserves_inputs").c_str(),
                                 rapidcheck_loop, b, "capture_preserves_inputs")
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("rapidcheck_trivial_floor", rapidcheck_trivial)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("generate_scenario", generation_only);
}

}  // namespace
}  // namespace capcheck

int main(int argc, char** argv) {
  capcheck::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
