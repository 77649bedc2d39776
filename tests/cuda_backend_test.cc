// What is the raw CUDA backend's own: its model_step bounds record (Note
// [model_step bounds]), eager batching (Note [eager batching]), the slab and its
// readback mirror (Note [one slab, one readback]) with large buffers, and, op by
// op and property by property, bitwise agreement with the sim. The capture rules
// of docs/capture-rules.md are pinned on it by tests/backend_conformance_test.cc
// (its Cuda instances). Skipped where no CUDA device is present (ctest label `gpu`).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
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

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    // `why` reads "no CUDA device: <the runtime's reason>".
    if (!cuda_device_available(&why)) GTEST_SKIP() << "skipped: " << why;
  }
};

std::vector<std::int32_t> read(Backend& backend, Buffer buffer) {
  return read(backend, whole(buffer));
}

Buffer make_buffer(Backend& backend, const char* label, const std::vector<std::int32_t>& values) {
  const Buffer buffer = backend.allocate(label, static_cast<std::int64_t>(values.size()));
  backend.upload(whole(buffer), values.data());
  return buffer;
}

// The error a call throws: its kind and message, or nothing.
struct Thrown {
  std::optional<BackendErrorKind> kind;
  std::string message;
};

Thrown thrown_by(const std::function<void()>& call) {
  try {
    call();
  } catch (const BackendError& e) {
    return Thrown{e.kind(), e.what()};
  }
  return Thrown{};
}

TEST_F(CudaBackendTest, ModelStepWithOutOfRangeSequenceIdWritesNothingAndReportsTheSimsError) {
  for (const bool batching : {true, false}) {
    SCOPED_TRACE(batching ? "eager batching" : "one launch per op");
    auto cuda = make_cuda_backend();
    cuda_backend_set_eager_batching(*cuda, batching);
    auto sim = make_sim_backend();
    std::string messages[2];
    for (int b = 0; b < 2; ++b) {
      Backend& backend = b == 0 ? *sim : *cuda;
      const Buffer ids = make_buffer(backend, "ids", {1, 2, 3});
      const Buffer positions = make_buffer(backend, "positions", {0, 1, 2});
      const Buffer seq_ids = make_buffer(backend, "seq_ids", {0, 2, -1});
      const Buffer kv_lens = make_buffer(backend, "kv_lens", {5, 6});
      const Buffer out = backend.allocate("out", 3);
      // The sim throws at the launch; the GPU at the next synchronizing call.
      const Thrown thrown = thrown_by([&] {
        backend.model_step(whole(out), whole(ids), whole(positions), whole(seq_ids),
                           whole(kv_lens));
        backend.synchronize();
      });
      EXPECT_EQ(thrown.kind, BackendErrorKind::kInvalidValue) << backend.name();
      messages[b] = thrown.message;
      EXPECT_EQ(read(backend, out), (std::vector<std::int32_t>{0, 0, 0})) << backend.name();
      backend.synchronize();  // reported once
    }
    EXPECT_EQ(messages[0], messages[1]);
  }
}

TEST_F(CudaBackendTest, OverlappingCopyAndAddReadTheSourceBeforeWriting) {
  for (const bool batching : {true, false}) {
    SCOPED_TRACE(batching ? "eager batching" : "one launch per op");
    auto cuda = make_cuda_backend();
    cuda_backend_set_eager_batching(*cuda, batching);
    auto sim = make_sim_backend();
    std::vector<std::int32_t> results[2];
    for (int b = 0; b < 2; ++b) {
      Backend& backend = b == 0 ? *sim : *cuda;
      const Buffer a = make_buffer(backend, "a", {1, 2, 3, 4, 5, 6, 7, 8});
      backend.copy(range(a, 2, 8), range(a, 0, 6));
      backend.add(range(a, 0, 6), range(a, 1, 7));
      backend.begin_capture();
      backend.sub(range(a, 3, 8), range(a, 0, 5));
      const Graph graph = backend.end_capture();
      backend.replay(graph);
      backend.replay(graph);
      results[b] = read(backend, a);
    }
    EXPECT_EQ(results[0], results[1]);
  }
}

TEST_F(CudaBackendTest, LargeBuffersAndManyUploadsAgreeWithTheSim) {
  // Past the batch limits (one op of more than 64 Ki elements), past the
  // pinned staging (several MiB of uploads between synchronizations), past
  // the readback mirror (a slab over 1 MiB) and past the first slab (4 MiB).
  constexpr std::int64_t kLarge = 1 << 20;
  constexpr std::int64_t kChunk = 60000;
  auto cuda = make_cuda_backend();
  auto sim = make_sim_backend();
  std::vector<std::int32_t> results[2];
  for (int b = 0; b < 2; ++b) {
    Backend& backend = b == 0 ? *sim : *cuda;
    const Buffer big = backend.allocate("big", kLarge);
    const Buffer other = backend.allocate("other", kLarge);
    std::vector<std::int32_t> values(static_cast<std::size_t>(kLarge));
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::int32_t>(i * 2654435761u);
    backend.upload(whole(big), values.data());
    for (std::int64_t at = 0; at + kChunk <= kLarge; at += kChunk) {
      backend.upload(range(other, at, at + kChunk), values.data() + at);
      backend.add(range(big, at, at + kChunk), range(other, at, at + kChunk));
    }
    backend.copy(range(big, 0, kLarge - 3), range(big, 3, kLarge));
    backend.begin_capture();
    backend.sub(whole(other), whole(big));
    const Graph graph = backend.end_capture();
    backend.replay(graph);
    results[b] = read(backend, other);
    const auto tail = read(backend, range(big, kLarge - 10, kLarge));
    results[b].insert(results[b].end(), tail.begin(), tail.end());
  }
  EXPECT_TRUE(results[0] == results[1]);
}

// ---------------------------------------------------------------------------
// Random op sequences: the cuda backend and the sim stay bitwise identical
// after every step, captures and replays included.

class Lockstep {
 public:
  Lockstep(std::uint32_t seed, bool batching) : random_(seed) {
    backends_[0] = make_sim_backend();
    backends_[1] = make_cuda_backend();
    cuda_backend_set_eager_batching(*backends_[1], batching);
    // Buffer 0 holds sequence ids in [0, kSeqs): only uploads write it.
    allocate_at(0, 64);
    for (std::size_t i = 1; i < kBuffers; ++i) allocate_at(i, pick(kSeqs, 300));
  }

  void step(int index) {
    step_index_ = index;
    const int action = static_cast<int>(pick(0, 99));
    if (action < 15) {
      upload();
    } else if (action < 70) {
      const Op op = random_op(/*allow_invalid=*/true);
      both([&](Backend& backend) { backend.launch(op); });
    } else if (action < 82) {
      capture();
    } else if (action < 92) {
      replay();
    } else if (action < 96) {
      reallocate();
    } else {
      destroy();
    }
    compare_memory();
  }

 private:
  static constexpr std::size_t kBuffers = 6;
  static constexpr std::int64_t kSeqs = 8;

  std::int64_t pick(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(random_);
  }

  // Runs `call` on both backends; both must succeed or throw the same kind.
  void both(const std::function<void(Backend&)>& call) {
    const Thrown sim = thrown_by([&] { call(*backends_[0]); });
    const Thrown cuda = thrown_by([&] { call(*backends_[1]); });
    ASSERT_EQ(sim.kind.has_value(), cuda.kind.has_value())
        << "step " << step_index_ << ": sim: " << sim.message << " cuda: " << cuda.message;
    if (sim.kind) {
      ASSERT_EQ(*sim.kind, *cuda.kind) << "step " << step_index_ << ": " << sim.message << " vs "
                                       << cuda.message;
    }
  }

  void allocate_at(std::size_t index, std::int64_t count) {
    const Buffer sim = backends_[0]->allocate("b" + std::to_string(index), count);
    const Buffer cuda = backends_[1]->allocate("b" + std::to_string(index), count);
    ASSERT_EQ(sim, cuda);
    if (buffers_.size() <= index) buffers_.resize(index + 1);
    buffers_[index] = sim;
  }

  Slice random_slice(std::size_t buffer_index, std::int64_t count) {
    const Buffer buffer = buffers_[buffer_index];
    const std::int64_t offset = pick(0, buffer.size - count);
    return Slice{buffer, offset, count};
  }

  std::size_t random_buffer(std::size_t first) {
    return static_cast<std::size_t>(pick(static_cast<std::int64_t>(first), kBuffers - 1));
  }

  // A buffer other than `output` of at least `count` elements (buffer 0,
  // which holds 64, when none is drawn).
  std::size_t input_buffer(std::int64_t count, std::size_t output) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      const std::size_t index = random_buffer(0);
      if (index != output && buffers_[index].size >= count) return index;
    }
    return 0;
  }

  // A random op; with `allow_invalid`, sometimes one both backends must refuse.
  Op random_op(bool allow_invalid = false) {
    const int kind = static_cast<int>(pick(0, 4));
    const std::size_t dst_buffer = random_buffer(1);
    std::int64_t size_max = buffers_[dst_buffer].size;
    Op op;
    op.kind = static_cast<OpKind>(kind);
    if (op.kind == OpKind::kFill) {
      op.dst = random_slice(dst_buffer, pick(0, size_max));
      op.value = static_cast<std::int32_t>(pick(INT32_MIN, INT32_MAX));
      return op;
    }
    if (op.kind != OpKind::kModelStep) {
      // Often the same buffer, so overlapping slices are common.
      const std::size_t src_buffer = pick(0, 1) == 0 ? dst_buffer : random_buffer(0);
      size_max = std::min(size_max, buffers_[src_buffer].size);
      const std::int64_t count = pick(0, size_max);
      op.dst = random_slice(dst_buffer, count);
      op.src = random_slice(src_buffer, count);
      return op;
    }
    // model_step: sequence ids from buffer 0 and kv_lens of at least kSeqs
    // elements; inputs never overlap the output (both backends refuse that).
    std::size_t kv_buffer = random_buffer(1);
    while (kv_buffer == dst_buffer) kv_buffer = random_buffer(1);
    const std::int64_t count = pick(0, std::min<std::int64_t>(size_max, 64));
    op.dst = random_slice(dst_buffer, count);
    op.src = random_slice(input_buffer(count, dst_buffer), count);
    op.positions = random_slice(input_buffer(count, dst_buffer), count);
    op.seq_ids = random_slice(0, count);
    op.kv_lens = random_slice(kv_buffer, pick(kSeqs, buffers_[kv_buffer].size));
    if (allow_invalid && count > 0 && pick(0, 9) == 0) op.src = op.dst;
    return op;
  }

  void upload() {
    const std::size_t index = random_buffer(0);
    const std::int64_t count = pick(0, buffers_[index].size);
    const Slice slice = random_slice(index, count);
    std::vector<std::int32_t> values(static_cast<std::size_t>(count));
    for (auto& v : values) {
      v = index == 0 ? static_cast<std::int32_t>(pick(0, kSeqs - 1))
                     : static_cast<std::int32_t>(pick(INT32_MIN, INT32_MAX));
    }
    both([&](Backend& backend) { backend.upload(slice, values.data()); });
  }

  void capture() {
    std::vector<Op> ops;
    const std::int64_t count = pick(0, 4);
    for (std::int64_t i = 0; i < count; ++i) ops.push_back(random_op());
    std::vector<Graph> made(2);
    for (int b = 0; b < 2; ++b) {
      Backend& backend = *backends_[b];
      backend.begin_capture();
      for (const Op& op : ops) backend.launch(op);
      made[static_cast<std::size_t>(b)] = backend.end_capture();
    }
    graphs_.push_back({made[0], made[1]});
  }

  void replay() {
    if (graphs_.empty()) return;
    const auto& pair = graphs_[static_cast<std::size_t>(pick(0, graphs_.size() - 1))];
    const int times = static_cast<int>(pick(1, 3));
    for (int t = 0; t < times; ++t) {
      const Thrown sim = thrown_by([&] { backends_[0]->replay(pair.first); });
      const Thrown cuda = thrown_by([&] { backends_[1]->replay(pair.second); });
      ASSERT_EQ(sim.kind, cuda.kind) << "step " << step_index_ << ": " << sim.message << " vs "
                                     << cuda.message;
    }
  }

  void reallocate() {
    const std::size_t index = random_buffer(1);
    const std::int64_t count = pick(kSeqs, 300);
    both([&](Backend& backend) { backend.free(buffers_[index]); });
    allocate_at(index, count);
  }

  void destroy() {
    if (graphs_.empty()) return;
    const auto at = static_cast<std::ptrdiff_t>(pick(0, graphs_.size() - 1));
    backends_[0]->destroy_graph(graphs_[static_cast<std::size_t>(at)].first);
    backends_[1]->destroy_graph(graphs_[static_cast<std::size_t>(at)].second);
    graphs_.erase(graphs_.begin() + at);
  }

  void compare_memory() {
    for (std::size_t i = 0; i < buffers_.size(); ++i) {
      const auto sim = read(*backends_[0], buffers_[i]);
      const auto cuda = read(*backends_[1], buffers_[i]);
      for (std::size_t k = 0; k < sim.size(); ++k) {
        ASSERT_EQ(sim[k], cuda[k]) << "step " << step_index_ << ": buffer b" << i << "[" << k
                                   << "] differs";
      }
    }
  }

  std::mt19937_64 random_;
  std::unique_ptr<Backend> backends_[2];
  std::vector<Buffer> buffers_;
  std::vector<std::pair<Graph, Graph>> graphs_;
  int step_index_ = 0;
};

TEST_F(CudaBackendTest, RandomOpSequencesAgreeBitwiseWithTheSim) {
  constexpr int kSeeds = 8;
  constexpr int kSteps = 300;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    const bool batching = seed % 2 == 1;
    SCOPED_TRACE("seed " + std::to_string(seed) + (batching ? ", eager batching" : ", one launch per op"));
    Lockstep lockstep(static_cast<std::uint32_t>(seed), batching);
    for (int step = 0; step < kSteps; ++step) {
      lockstep.step(step);
      if (HasFatalFailure()) return;
    }
  }
}

// ---------------------------------------------------------------------------
// Every property gives the same verdict on the cuda backend as on the sim.

std::vector<Scenario> sample_scenarios(int count, std::uint64_t seed) {
  const rc::Gen<Scenario> generator = gen_scenario(GenOptions{});
  rc::Random random(seed);
  std::vector<Scenario> scenarios;
  for (int i = 0; i < count; ++i) {
    scenarios.push_back(generator(random.split(), i % 101).value());
  }
  return scenarios;
}

void expect_same_verdict(const Verdict& sim, const Verdict& cuda, const std::string& where) {
  EXPECT_EQ(sim.passed, cuda.passed) << where << "\nsim: " << format_verdict(sim)
                                     << "cuda: " << format_verdict(cuda);
  EXPECT_EQ(sim.mismatch.has_value(), cuda.mismatch.has_value()) << where;
  if (sim.mismatch && cuda.mismatch) {
    EXPECT_EQ(sim.mismatch->buffer, cuda.mismatch->buffer) << where;
    EXPECT_EQ(sim.mismatch->index, cuda.mismatch->index) << where;
    EXPECT_EQ(sim.mismatch->expected, cuda.mismatch->expected) << where;
    EXPECT_EQ(sim.mismatch->actual, cuda.mismatch->actual) << where;
  }
  EXPECT_EQ(sim.message, cuda.message) << where;
  EXPECT_EQ(sim.notes, cuda.notes) << where;
}

// 200 scenarios, or CAPCHECK_CUDA_TEST_SCENARIOS (fewer under compute-sanitizer).
int scenarios_count() {
  constexpr int kScenariosDefault = 200;
  constexpr int kScenariosMax = 100000;
  const char* text = std::getenv("CAPCHECK_CUDA_TEST_SCENARIOS");
  if (text == nullptr) return kScenariosDefault;
  return std::clamp(std::atoi(text), 1, kScenariosMax);
}

TEST_F(CudaBackendTest, EveryPropertyVerdictAgreesWithTheSimUnderEveryProtocol) {
  Harness sim(make_sim_backend(), make_trtllm_subject);
  Harness cuda(make_cuda_backend(), make_trtllm_subject);
  const auto scenarios = sample_scenarios(scenarios_count(), 20251117);
  int failed_verdicts = 0;
  for (int p = 0; p < kProtocolCount; ++p) {
    for (std::size_t i = 0; i < scenarios.size(); ++i) {
      Scenario scenario = scenarios[i];
      scenario.protocol = static_cast<Protocol>(p);
      for (const PropertyInfo& property : all_properties()) {
        if (property.name == "backends_agree") continue;  // needs peers; this test is the agreement
        const std::string where = std::string(protocol_name(scenario.protocol)) + " scenario " +
                                  std::to_string(i) + " " + std::string(property.name) + ": " +
                                  summarize(scenario);
        const Verdict on_sim = check_property(property, sim, scenario);
        const Verdict on_cuda = check_property(property, cuda, scenario);
        expect_same_verdict(on_sim, on_cuda, where);
        failed_verdicts += on_sim.passed ? 0 : 1;
        if (HasFailure()) return;
      }
    }
  }
  // The comparison means something only if some verdicts failed (seed-pr,
  // pre-fix and the canary must).
  EXPECT_GT(failed_verdicts, 0);
}

TEST_F(CudaBackendTest, MutantVerdictsAgreeWithTheSimWithoutEagerBatching) {
  Harness sim(make_sim_backend(), make_trtllm_subject);
  auto unbatched = make_cuda_backend();
  cuda_backend_set_eager_batching(*unbatched, false);  // the other launch path
  Harness cuda(std::move(unbatched), make_trtllm_subject);
  const auto scenarios = sample_scenarios(std::max(1, scenarios_count() * 3 / 10), 7);
  for (int m = 1; m < kMutantCount; ++m) {
    for (std::size_t i = 0; i < scenarios.size(); ++i) {
      Scenario scenario = scenarios[i];
      scenario.mutant = static_cast<Mutant>(m);
      for (const PropertyInfo& property : all_properties()) {
        if (property.name == "backends_agree") continue;  // needs peers; this test is the agreement
        const std::string where = std::string(mutant_name(scenario.mutant)) + " scenario " +
                                  std::to_string(i) + " " + std::string(property.name);
        expect_same_verdict(check_property(property, sim, scenario),
                            check_property(property, cuda, scenario), where);
        if (HasFailure()) return;
      }
    }
  }
}

}  // namespace
}  // namespace capcheck
