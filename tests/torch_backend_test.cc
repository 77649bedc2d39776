// The LibTorch backend, on the CPU and (where LibTorch has CUDA and a device is
// present) on CUDA with real CUDA graphs: its model step is bitwise model_mix,
// it agrees bitwise with the sim on random op sequences (captures and replays
// included) and on every property's verdict, and its graphs share one memory
// pool (Note [one pool, kept]). The capture rules of docs/capture-rules.md are
// pinned on it by tests/backend_conformance_test.cc. Tests that need CUDA have
// "TorchCuda" in their name (ctest runs them as torch_backend_cuda_test, label
// `gpu`) and skip with "skipped: no CUDA device: ..." elsewhere.
#include "capcheck/trtllm_subject.h"
#include "capcheck/torch_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "capcheck/detail/model.h"
#include "capcheck/properties.h"
#include "capcheck/sim_backend.h"
#include "capcheck/generators.h"

namespace capcheck {
namespace {

constexpr std::uint32_t kSeed = 20261127;
constexpr std::int32_t kInt32Min = std::numeric_limits<std::int32_t>::min();
constexpr std::int32_t kInt32Max = std::numeric_limits<std::int32_t>::max();

using Memory = std::vector<std::vector<std::int32_t>>;

std::vector<std::int32_t> read(Backend& backend, Buffer buffer) {
  std::vector<std::int32_t> values(static_cast<std::size_t>(buffer.size));
  backend.download(whole(buffer), values.data());
  return values;
}

Memory snapshot(Backend& backend, const std::vector<Buffer>& buffers) {
  Memory memory;
  for (const Buffer& buffer : buffers) memory.push_back(read(backend, buffer));
  return memory;
}

Buffer allocate_with(Backend& backend, std::string_view label,
                     const std::vector<std::int32_t>& values) {
  const Buffer buffer = backend.allocate(label, static_cast<std::int64_t>(values.size()));
  backend.upload(whole(buffer), values.data());
  return buffer;
}

/// The kind of BackendError `body` throws, or nothing if it returns.
std::optional<BackendErrorKind> error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const BackendError& error) {
    return error.kind();
  }
  return std::nullopt;
}

/// Mostly uniform over int32, often one of the values where wrapping shows.
std::int32_t random_value(std::mt19937& rng) {
  static constexpr std::int32_t kEdges[] = {kInt32Min, kInt32Min + 1, -2, -1, 0, 1, 2,
                                            kInt32Max - 1, kInt32Max};
  if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
    return kEdges[std::uniform_int_distribution<std::size_t>(0, std::size(kEdges) - 1)(rng)];
  }
  return std::uniform_int_distribution<std::int32_t>(kInt32Min, kInt32Max)(rng);
}

/// A sim and a torch backend on `device`, in that order.
std::vector<std::unique_ptr<Backend>> sim_and_torch(TorchDevice device) {
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_sim_backend());
  backends.push_back(make_torch_backend({}, device));
  return backends;
}

/// "TorchCpu" or "TorchCuda": the test name suffix of a device.
std::string device_name(TorchDevice device) {
  return device == TorchDevice::kCuda ? "TorchCuda" : "TorchCpu";
}

/// A test run once per torch device; skipped on CUDA where it is not available.
class OnTorchDevice : public ::testing::TestWithParam<TorchDevice> {
 protected:
  void SetUp() override {
    std::string why;
    if (GetParam() == TorchDevice::kCuda && !torch_cuda_available(&why)) {
      GTEST_SKIP() << "skipped: " << why;
    }
  }
  TorchDevice device() const { return GetParam(); }
};

#define CAPCHECK_ON_TORCH_DEVICES(suite)                                                 \
  INSTANTIATE_TEST_SUITE_P(                                                              \
      Devices, suite, ::testing::Values(TorchDevice::kCpu, TorchDevice::kCuda),          \
      [](const ::testing::TestParamInfo<TorchDevice>& info) { return device_name(info.param); })

std::vector<std::int32_t> random_values(std::mt19937& rng, std::size_t count) {
  std::vector<std::int32_t> values(count);
  for (auto& value : values) value = random_value(rng);
  return values;
}

TEST(TorchBackend, NameAndDescription) {
  const auto backend = make_torch_backend({}, TorchDevice::kCpu);
  EXPECT_EQ(backend->name(), "torch");
  const std::string description = torch_backend_description();
  EXPECT_EQ(description.rfind("LibTorch ", 0), 0u) << description;
  // make_torch_backend() runs where the description says.
  const bool cuda = torch_cuda_available();
  EXPECT_NE(description.find(cuda ? " (CUDA, " : " (CPU)"), std::string::npos) << description;
}

TEST(TorchBackend, CudaWithoutCudaIsUnavailable) {
  std::string why;
  if (torch_cuda_available(&why)) GTEST_SKIP() << "LibTorch has CUDA and a device here";
  EXPECT_EQ(why.rfind("no CUDA device: ", 0), 0u) << why;
  try {
    (void)make_torch_backend({}, TorchDevice::kCuda);
    ADD_FAILURE() << "make_torch_backend(kCuda) succeeded without CUDA";
  } catch (const BackendError& error) {
    EXPECT_EQ(error.kind(), BackendErrorKind::kUnavailable);
  }
}

TEST(TorchCudaBackend, DescriptionNamesTheDevice) {
  std::string why;
  if (!torch_cuda_available(&why)) GTEST_SKIP() << "skipped: " << why;
  const std::string description = torch_backend_description();
  EXPECT_NE(description.find(" (CUDA, "), std::string::npos) << description;
  std::printf("torch backend: %s\n", description.c_str());
}

// (a) The model step is model_mix, bit for bit, on both backends.
class ModelStep : public OnTorchDevice {};
CAPCHECK_ON_TORCH_DEVICES(ModelStep);

TEST_P(ModelStep, IsModelMixBitwise) {
  constexpr std::size_t kTokensCount = 4096;
  constexpr std::int32_t kSequencesCount = 61;
  std::mt19937 rng(kSeed);
  std::vector<std::int32_t> input_ids = random_values(rng, kTokensCount);
  std::vector<std::int32_t> position_ids = random_values(rng, kTokensCount);
  std::vector<std::int32_t> kv_lens = random_values(rng, kSequencesCount);
  std::vector<std::int32_t> seq_ids(kTokensCount);
  std::uniform_int_distribution<std::int32_t> random_seq(0, kSequencesCount - 1);
  for (auto& seq : seq_ids) seq = random_seq(rng);
  // Every pair of edge values, exactly, at the front.
  const std::int32_t edges[] = {kInt32Min, kInt32Max, -1, 0, 1};
  std::size_t t = 0;
  for (std::int32_t id : edges) {
    for (std::int32_t position : edges) {
      input_ids[t] = id;
      position_ids[t] = position;
      seq_ids[t] = static_cast<std::int32_t>(t % 5);
      ++t;
    }
  }
  for (std::size_t s = 0; s < 5; ++s) kv_lens[s] = edges[s];

  std::vector<std::int32_t> expected(kTokensCount);
  for (std::size_t i = 0; i < kTokensCount; ++i) {
    expected[i] = model_mix(input_ids[i], position_ids[i], kv_lens[seq_ids[i]]);
  }

  for (const auto& backend : sim_and_torch(device())) {
    SCOPED_TRACE(std::string(backend->name()));
    const Buffer ids = allocate_with(*backend, "input_ids", input_ids);
    const Buffer positions = allocate_with(*backend, "position_ids", position_ids);
    const Buffer seqs = allocate_with(*backend, "seq_ids", seq_ids);
    const Buffer kv = allocate_with(*backend, "kv_lens", kv_lens);
    const Buffer out = backend->allocate("logits", kTokensCount);
    backend->model_step(whole(out), whole(ids), whole(positions), whole(seqs), whole(kv));
    const std::vector<std::int32_t> actual = read(*backend, out);
    for (std::size_t i = 0; i < kTokensCount; ++i) {
      ASSERT_EQ(actual[i], expected[i]) << "token " << i << ": model_mix(" << input_ids[i] << ", "
                                        << position_ids[i] << ", " << kv_lens[seq_ids[i]] << ")";
    }
  }
}

TEST_P(ModelStep, RejectsSeqIdsOutsideKvLensLikeTheSim) {
  for (const std::int32_t bad : {-1, 4, kInt32Min, kInt32Max}) {
    SCOPED_TRACE("bad seq id " + std::to_string(bad));
    Memory memory[2];
    std::string messages[2];
    int index = 0;
    for (const auto& backend : sim_and_torch(device())) {
      const Buffer ids = allocate_with(*backend, "input_ids", {5, 6, 7, 8});
      const Buffer seqs = allocate_with(*backend, "seq_ids", {0, 3, bad, 1});
      const Buffer kv = allocate_with(*backend, "kv_lens", {10, 20, 30, 40});
      const Buffer out = allocate_with(*backend, "logits", {-9, -9, -9, -9});
      try {
        backend->model_step(whole(out), whole(ids), whole(ids), whole(seqs), whole(kv));
        ADD_FAILURE() << backend->name() << " accepted seq id " << bad;
      } catch (const BackendError& error) {
        EXPECT_EQ(error.kind(), BackendErrorKind::kInvalidValue);
        EXPECT_EQ(error.call(), "model_step");
        messages[index] = error.what();
      }
      memory[index] = snapshot(*backend, {ids, seqs, kv, out});
      ++index;
    }
    EXPECT_EQ(messages[0], messages[1]);
    EXPECT_EQ(memory[0], memory[1]);
  }
}

// (b) The same random op sequence on sim and torch, compared after every step.
class Differential {
 public:
  static constexpr std::int32_t kSeqIdsMax = 7;  // model_step reads kv_lens[0..7]
  static constexpr std::int64_t kBufferSizeMax = 257;

  Differential(std::uint32_t seed, TorchDevice device)
      : rng_(seed), torch_(make_torch_backend({}, device)) {
    for (const std::int64_t size : {std::int64_t{1}, std::int64_t{9}, std::int64_t{64},
                                    kBufferSizeMax}) {
      const std::vector<std::int32_t> values = random_values(rng_, static_cast<std::size_t>(size));
      const std::string label = "data" + std::to_string(data_.size());
      data_.push_back(allocate_both(label, values));
    }
    // As long as the longest data buffer, so any token count has valid seq ids.
    std::vector<std::int32_t> seq_ids(static_cast<std::size_t>(kBufferSizeMax));
    std::uniform_int_distribution<std::int32_t> random_seq(0, kSeqIdsMax);
    for (auto& seq : seq_ids) seq = random_seq(rng_);
    seq_ids_ = allocate_both("seq_ids", seq_ids);
    all_ = data_;
    all_.push_back(seq_ids_);
  }

  /// One random eager op, or an upload; then both backends must agree.
  void step() {
    if (pick(0, 19) == 0) {
      const Slice dst = random_slice(random_data(), -1);
      const std::vector<std::int32_t> values =
          random_values(rng_, static_cast<std::size_t>(dst.count));
      sim_->upload(dst, values.data());
      torch_->upload(dst, values.data());
      history_.push_back("upload " + sim_->label(dst.buffer));
    } else {
      launch_both(random_op(/*allow_invalid=*/true));
    }
    expect_agree();
  }

  /// Captures `ops_count` random ops, checks memory is unchanged by the
  /// capture, then replays the graph `replays_count` times, comparing after each.
  void capture_and_replay(int ops_count, int replays_count) {
    const Memory before = snapshot(*sim_, all_);
    sim_->begin_capture();
    torch_->begin_capture();
    for (int i = 0; i < ops_count; ++i) launch_both(random_op(/*allow_invalid=*/false));
    const Graph sim_graph = sim_->end_capture();
    const Graph torch_graph = torch_->end_capture();
    history_.push_back("capture of " + std::to_string(ops_count) + " ops");
    ASSERT_EQ(snapshot(*sim_, all_), before) << "sim memory changed by a capture";
    ASSERT_EQ(snapshot(*torch_, all_), before) << "torch memory changed by a capture";
    for (int replay = 0; replay < replays_count; ++replay) {
      sim_->replay(sim_graph);
      torch_->replay(torch_graph);
      history_.push_back("replay " + std::to_string(replay + 1));
      expect_agree();
    }
    sim_->destroy_graph(sim_graph);
    torch_->destroy_graph(torch_graph);
  }

  void expect_agree() {
    for (const Buffer& buffer : all_) {
      const std::vector<std::int32_t> expected = read(*sim_, buffer);
      const std::vector<std::int32_t> actual = read(*torch_, buffer);
      for (std::size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ(actual[i], expected[i])
            << sim_->label(buffer) << "[" << i << "] differs after step " << history_.size()
            << ": " << history_.back();
      }
    }
  }

  int model_steps_count() const { return model_steps_count_; }
  int errors_count() const { return errors_count_; }

 private:
  int pick(int low, int high) { return std::uniform_int_distribution<int>(low, high)(rng_); }

  Buffer allocate_both(const std::string& label, const std::vector<std::int32_t>& values) {
    const Buffer buffer = allocate_with(*sim_, label, values);
    EXPECT_EQ(allocate_with(*torch_, label, values), buffer);
    return buffer;
  }

  Buffer random_data() { return data_[static_cast<std::size_t>(pick(0, int(data_.size()) - 1))]; }

  /// A random in-bounds slice of `buffer`, `count` long when count >= 0.
  Slice random_slice(Buffer buffer, std::int64_t count) {
    if (count < 0) count = pick(0, static_cast<int>(buffer.size));
    const std::int64_t offset = pick(0, static_cast<int>(buffer.size - count));
    return Slice{buffer, offset, count};
  }

  /// A buffer of at least `count` elements (data or, when `seq_ids`, seq_ids).
  Buffer random_buffer_holding(std::int64_t count, bool include_seq_ids) {
    for (;;) {
      const Buffer buffer = include_seq_ids && pick(0, 4) == 0 ? seq_ids_ : random_data();
      if (buffer.size >= count) return buffer;
    }
  }

  static bool overlaps(const Slice& a, const Slice& b) {
    return a.buffer == b.buffer && a.offset < b.offset + b.count && b.offset < a.offset + a.count;
  }

  /// Writes go to data buffers only, so seq_ids stay valid indices. With
  /// `allow_invalid`, a model step sometimes reads seq ids from data (mostly
  /// out of range): both backends must then fail alike.
  Op random_op(bool allow_invalid) {
    Op op;
    op.dst = random_slice(random_data(), -1);
    const std::int64_t count = op.dst.count;
    switch (pick(0, 4)) {
      case 0: op.kind = OpKind::kAdd; break;
      case 1: op.kind = OpKind::kSub; break;
      case 2: op.kind = OpKind::kCopy; break;
      case 3: op.kind = OpKind::kFill; break;
      case 4: op.kind = OpKind::kModelStep; break;
    }
    if (op.kind == OpKind::kFill) {
      op.value = random_value(rng_);
      return op;
    }
    op.src = random_slice(random_buffer_holding(count, true), count);
    if (op.kind != OpKind::kModelStep) return op;
    ++model_steps_count_;
    op.positions = random_slice(random_buffer_holding(count, true), count);
    op.seq_ids = allow_invalid && pick(0, 9) == 0
                     ? random_slice(random_buffer_holding(count, false), count)
                     : random_slice(seq_ids_, count);
    // The sim computes token by token and reads kv_lens live, so an output
    // that overlaps kv_lens is order dependent (a data race on a GPU): excluded.
    do {
      op.kv_lens = random_slice(random_buffer_holding(kSeqIdsMax + 1, false), -1);
    } while (op.kv_lens.count <= kSeqIdsMax || overlaps(op.kv_lens, op.dst));
    return op;
  }

  void launch_both(const Op& op) {
    history_.push_back(describe(*sim_, op));
    const auto sim_error = error_of([&] { sim_->launch(op); });
    const auto torch_error = error_of([&] { torch_->launch(op); });
    EXPECT_EQ(sim_error, torch_error) << history_.back();
    errors_count_ += sim_error ? 1 : 0;
  }

  std::mt19937 rng_;
  std::unique_ptr<Backend> sim_ = make_sim_backend();
  std::unique_ptr<Backend> torch_;
  std::vector<Buffer> data_;
  Buffer seq_ids_;
  std::vector<Buffer> all_;
  std::vector<std::string> history_;
  int model_steps_count_ = 0;
  int errors_count_ = 0;
};

class AgreesWithSim : public OnTorchDevice {};
CAPCHECK_ON_TORCH_DEVICES(AgreesWithSim);

TEST_P(AgreesWithSim, OnRandomOpsCapturesAndReplays) {
  constexpr int kRoundsCount = 8;
  constexpr int kEagerOpsCount = 150;
  constexpr int kCapturedOpsCount = 20;
  constexpr int kReplaysCount = 3;
  Differential differential(kSeed, device());
  for (int round = 0; round < kRoundsCount; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    for (int i = 0; i < kEagerOpsCount; ++i) {
      differential.step();
      if (::testing::Test::HasFatalFailure()) return;
    }
    differential.capture_and_replay(kCapturedOpsCount, kReplaysCount);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // The sequence must exercise the model step and its error path.
  EXPECT_GT(differential.model_steps_count(), 100);
  EXPECT_GT(differential.errors_count(), 0);
}

// (c) What is torch's own. The capture rules themselves are pinned on every
// backend, torch on the CPU and on CUDA included, by tests/backend_conformance_test.cc.
//
// Note [one pool, kept] in src/backend/torch/torch_cuda_backend.cc: every graph
// shares the first graph's memory pool, also after every graph was destroyed.
class SharedPool : public OnTorchDevice {};
CAPCHECK_ON_TORCH_DEVICES(SharedPool);

TEST_P(SharedPool, CapturesKeepWorkingAfterEveryGraphIsDestroyed) {
  const auto backend = make_torch_backend({}, device());
  const Buffer ids = allocate_with(*backend, "ids", {1, 2, 3, 4});
  const Buffer positions = allocate_with(*backend, "positions", {4, 3, 2, 1});
  const Buffer seq_ids = allocate_with(*backend, "seq_ids", {0, 0, 1, 1});
  const Buffer kv_lens = allocate_with(*backend, "kv_lens", {10, 20});
  const Buffer out = backend->allocate("out", 4);
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<Graph> graphs;
    for (int key = 0; key < 3; ++key) {
      backend->begin_capture();
      backend->add(whole(ids), whole(positions));
      backend->model_step(whole(out), whole(ids), whole(positions), whole(seq_ids),
                          whole(kv_lens));
      graphs.push_back(backend->end_capture());
    }
    for (const Graph graph : graphs) backend->replay(graph);
    for (const Graph graph : graphs) backend->destroy_graph(graph);
  }
  // Twelve replays, each adding positions to ids before the step.
  std::vector<std::int32_t> expected(4);
  const std::int32_t start[] = {1, 2, 3, 4}, step[] = {4, 3, 2, 1}, kv[] = {10, 10, 20, 20};
  for (std::size_t t = 0; t < 4; ++t) {
    expected[t] = model_mix(start[t] + 12 * step[t], step[t], kv[t]);
  }
  EXPECT_EQ(read(*backend, out), expected);
}

// (d) Every property gives the same verdict on torch as on the sim.

std::vector<Scenario> sample_scenarios(int count, std::uint64_t seed) {
  const rc::Gen<Scenario> generator = gen_scenario(GenOptions{});
  rc::Random random(seed);
  std::vector<Scenario> scenarios;
  for (int i = 0; i < count; ++i) scenarios.push_back(generator(random.split(), i % 101).value());
  return scenarios;
}

// 40 scenarios, or CAPCHECK_TORCH_TEST_SCENARIOS (fewer under compute-sanitizer).
int scenarios_count() {
  constexpr int kScenariosDefault = 40;
  constexpr int kScenariosMax = 100000;
  const char* text = std::getenv("CAPCHECK_TORCH_TEST_SCENARIOS");
  if (text == nullptr) return kScenariosDefault;
  return std::clamp(std::atoi(text), 1, kScenariosMax);
}

void expect_same_verdict(const Verdict& sim, const Verdict& torch, const std::string& where) {
  EXPECT_EQ(sim.passed, torch.passed) << where << "\nsim: " << format_verdict(sim)
                                      << "torch: " << format_verdict(torch);
  EXPECT_EQ(sim.mismatch.has_value(), torch.mismatch.has_value()) << where;
  if (sim.mismatch && torch.mismatch) {
    EXPECT_EQ(sim.mismatch->buffer, torch.mismatch->buffer) << where;
    EXPECT_EQ(sim.mismatch->index, torch.mismatch->index) << where;
    EXPECT_EQ(sim.mismatch->expected, torch.mismatch->expected) << where;
    EXPECT_EQ(sim.mismatch->actual, torch.mismatch->actual) << where;
  }
  EXPECT_EQ(sim.message, torch.message) << where;
  EXPECT_EQ(sim.notes, torch.notes) << where;
}

class PropertyVerdicts : public OnTorchDevice {};
CAPCHECK_ON_TORCH_DEVICES(PropertyVerdicts);

TEST_P(PropertyVerdicts, AgreeWithTheSimUnderEveryProtocolAndMutant) {
  Harness sim(make_sim_backend(), make_trtllm_subject);
  Harness torch(make_torch_backend({}, device()), make_trtllm_subject);
  const auto scenarios = sample_scenarios(scenarios_count(), 20261128);
  int failed_verdicts = 0;
  for (int variant = 0; variant < kProtocolCount + kMutantCount - 1; ++variant) {
    for (std::size_t i = 0; i < scenarios.size(); ++i) {
      Scenario scenario = scenarios[i];
      if (variant < kProtocolCount) {
        scenario.protocol = static_cast<Protocol>(variant);
      } else {
        scenario.mutant = static_cast<Mutant>(variant - kProtocolCount + 1);
      }
      for (const PropertyInfo& property : all_properties()) {
        // backends_agree compares a harness with its peers; it has its own runs.
        if (property.name == "backends_agree") continue;
        const std::string where = std::string(protocol_name(scenario.protocol)) + "/" +
                                  std::string(mutant_name(scenario.mutant)) + " scenario " +
                                  std::to_string(i) + " " + std::string(property.name) + ": " +
                                  summarize(scenario);
        const Verdict on_sim = check_property(property, sim, scenario);
        expect_same_verdict(on_sim, check_property(property, torch, scenario), where);
        failed_verdicts += on_sim.passed ? 0 : 1;
        if (HasFailure()) return;
      }
    }
  }
  // The comparison means something only if some verdicts failed (seed-pr,
  // pre-fix, the mutants and the canary must).
  EXPECT_GT(failed_verdicts, 0);
}

}  // namespace
}  // namespace capcheck
