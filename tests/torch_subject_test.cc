// LibTorch subjects (capcheck/torch_subject.h): the TensorRT-LLM runner in
// LibTorch under the generic properties, on the emulator (CPU) and on
// at::cuda::CUDAGraph (GPU; skipped without one), and the differential
// property against the op-level subject.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "capcheck/errors.h"
#include "support/test_data.h"
#include "capcheck/generators.h"
#include "capcheck/harness.h"
#include "capcheck/runner.h"
#include "capcheck/subject_registry.h"
#include "capcheck/sim_backend.h"
#include "capcheck/token.h"
#include "capcheck/torch_subject.h"
#include "capcheck/trtllm_subject.h"

namespace capcheck {
namespace {

using test::data_file;

std::vector<std::int32_t> ints(const torch::Tensor& t, std::int64_t count) {
  const torch::Tensor c = t.reshape({-1}).narrow(0, 0, count).to(torch::kCPU).contiguous();
  return std::vector<std::int32_t>(c.data_ptr<std::int32_t>(), c.data_ptr<std::int32_t>() + count);
}

torch::Tensor named(const std::vector<NamedTensor>& tensors, const std::string& name) {
  for (const auto& t : tensors) {
    if (t.name == name) return t.tensor;
  }
  throw std::runtime_error("no tensor " + name);
}

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::atoi(value) : fallback;
}

// The device a test runs on: "emulator" (CPU tensors) or "cuda" (a GPU).
class TorchSubjectTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda") {
      std::string why;
      if (!torch_graph::cuda_graphs_available(&why)) GTEST_SKIP() << why;
    }
  }
  torch::Device device() const { return GetParam() == "cuda" ? torch::kCUDA : torch::kCPU; }
  TorchSubjectOptions options() const {
    TorchSubjectOptions o;
    o.device = device();
    o.graphs = GetParam() == "cuda" ? torch_graph::GraphDevice::kCuda
                                    : torch_graph::GraphDevice::kEmulator;
    return o;
  }
  std::unique_ptr<Subjects> subjects(TrtllmTorchOptions trtllm = {}) const {
    return make_torch_subjects(
        [trtllm](const TorchSubjectOptions& o) { return make_trtllm_torch_subject(o, trtllm); },
        device());
  }
};

// DESIGN's H200 measurement: kv_lens [10,20,30,40] with generation rows 1..3
// and kv offset 3 became [10,17,27,37] after a seed-pr capture; the first
// replay computed with [10,20,30,40] where eager sees [10,23,33,43].
TEST_P(TorchSubjectTest, SeedPrReproducesTheH200Measurement) {
  const Scenario s = from_json(data_file("h200_seed_pr.json"));
  auto graph = make_trtllm_torch_subject(options());
  graph->reset();
  graph->prepare(s);
  const torch::Tensor kv = named(graph->persistent_tensors(), "kv_lens_cuda");
  ASSERT_EQ(ints(kv, 4), (std::vector<std::int32_t>{10, 20, 30, 40}));
  graph->capture();
  EXPECT_EQ(ints(kv, 4), (std::vector<std::int32_t>{10, 17, 27, 37}));
  EXPECT_EQ(ints(named(graph->persistent_tensors(), "static_position_ids"), 10),
            (std::vector<std::int32_t>{0, 0, 0, 0, -1, -1, -1, -1, -1, -1}));
  const torch::Tensor replayed = named(graph->replay(), "logits").to(torch::kCPU);
  EXPECT_EQ(ints(kv, 4), (std::vector<std::int32_t>{10, 20, 30, 40}));
  // Columns: embedding (4), id / 1024, position, kv_len, the sum.
  EXPECT_EQ(replayed[4][6].item<float>(), 20.0f);
  EXPECT_EQ(replayed[4][5].item<float>(), 19.0f);  // 18 + the position offset 1

  auto eager = make_trtllm_torch_subject(options());
  eager->reset();
  eager->prepare(s);
  const torch::Tensor expected = named(eager->forward(), "logits").to(torch::kCPU);
  EXPECT_EQ(ints(named(eager->persistent_tensors(), "kv_lens_cuda"), 4),
            (std::vector<std::int32_t>{10, 23, 33, 43}));
  EXPECT_EQ(expected[4][6].item<float>(), 23.0f);
  EXPECT_TRUE(torch::equal(expected[0], replayed[0]));  // the context row is not offset
  EXPECT_FALSE(torch::equal(expected[4], replayed[4]));
}

TEST_P(TorchSubjectTest, FailuresNameTheTensorTheIndexAndTheOpThatLastWroteIt) {
  const Scenario s = from_json(data_file("h200_seed_pr.json"));
  auto subjects_ = subjects();
  const Verdict capture = capture_preserves_inputs(*subjects_, s);
  ASSERT_FALSE(capture.passed);
  ASSERT_TRUE(capture.mismatch);
  EXPECT_EQ(capture.mismatch->location, "static_position_ids[0, 4]");
  EXPECT_EQ(capture.mismatch->expected, "0");
  EXPECT_EQ(capture.mismatch->actual, "-1");
  std::string notes;
  for (const auto& n : capture.notes) notes += n + "\n";
  EXPECT_NE(notes.find("last write to static_position_ids[0, 4]: aten::sub_.Tensor during postprocess after capture"),
            std::string::npos)
      << notes;
  EXPECT_NE(notes.find("kv_lens_cuda (3 elements)"), std::string::npos) << notes;

  const Verdict replay = first_replay_matches_eager(*subjects_, s);
  ASSERT_FALSE(replay.passed);
  EXPECT_EQ(replay.mismatch->location, "logits[4, 6]");
  EXPECT_EQ(replay.mismatch->expected, "23");
  EXPECT_EQ(replay.mismatch->actual, "20");
  if (GetParam() == "emulator") {  // what a CUDA graph does inside is not visible
    bool named_op = false;
    for (const auto& n : replay.notes) named_op = named_op || n.find("aten::matmul during graph replay (graph op") != std::string::npos;
    EXPECT_TRUE(named_op) << format_verdict(replay);
  }
}

TEST_P(TorchSubjectTest, ReferencePassesEveryProperty) {
  auto subjects_ = subjects();
  RunConfig config;
  config.cases = env_int("CAPCHECK_TORCH_SUBJECT_CASES", 100);
  for (const auto& property : all_properties()) {
    if (property.canary || property.name == "backends_agree") continue;
    config.seed = ci_seed(property.name);
    const RunResult result = run_property(*subjects_, property, config);
    EXPECT_TRUE(result.passed) << property.name << ": " << format_verdict(result.verdict)
                               << (result.counterexample ? summarize(*result.counterexample) : "");
    EXPECT_EQ(result.cases_passed, config.cases);
  }
}

// The same seed and the same verdicts on every case give the same shrink path:
// the LibTorch runner's minimal failure is the op-level subject's.
TEST_P(TorchSubjectTest, SeedPrShrinksToTheOpLevelSubjectsMinimum) {
  auto torch_subjects = subjects();
  Harness op_level(make_sim_backend(), make_trtllm_subject);
  RunConfig config;
  config.cases = 1000;
  config.gen.protocol = Protocol::kSeedPr;
  for (const char* name : {"capture_preserves_inputs", "first_replay_matches_eager"}) {
    config.seed = 5;
    const RunResult a = run_property(*torch_subjects, find_property(name), config);
    const RunResult b = run_property(op_level, find_property(name), config);
    ASSERT_FALSE(a.passed) << name;
    ASSERT_FALSE(b.passed) << name;
    EXPECT_EQ(*a.counterexample, *b.counterexample)
        << name << "\n torch: " << summarize(*a.counterexample) << "\n op:    " << summarize(*b.counterexample);
    EXPECT_EQ(a.verdict.mismatch->buffer, b.verdict.mismatch->buffer) << name;
  }
}

TEST_P(TorchSubjectTest, MropePositionsAreThreeRowsOfTheSameUpdate) {
  const Scenario s = from_json(data_file("h200_seed_pr.json"));
  auto subjects_ = subjects(TrtllmTorchOptions{/*mrope=*/true});
  const Verdict capture = capture_preserves_inputs(*subjects_, s);
  ASSERT_FALSE(capture.passed);
  EXPECT_EQ(capture.mismatch->location, "static_position_ids[0, 0, 4]");
  Scenario reference = s;
  reference.protocol = Protocol::kReference;
  for (const auto& property : all_properties()) {
    if (property.canary || property.name == "backends_agree") continue;
    EXPECT_TRUE(check_property(property, *subjects_, reference).passed) << property.name;
  }
}

// Rule 6 through a subject: keeping only a non-owning alias of a graph's
// output lets the shared pool hand its memory to the next key's capture (on
// the emulator as the CUDA caching allocator does on a GPU).
TEST_P(TorchSubjectTest, AWeaklyHeldOutputIsOverwrittenByTheNextKeysReplay) {
  const Scenario s = from_json(data_file("h200_seed_pr.json"));
  Scenario reference = s;
  reference.protocol = Protocol::kReference;
  auto weak = subjects(TrtllmTorchOptions{false, /*weak_outputs=*/true});
  const Verdict v = graph_outputs_survive_other_replays(*weak, reference);
  ASSERT_FALSE(v.passed);
  EXPECT_EQ(v.mismatch->buffer, "logits");
  auto owning = subjects();
  EXPECT_TRUE(graph_outputs_survive_other_replays(*owning, reference).passed);
}

// The differential property: on every generated scenario, under every
// protocol and every mutant, each property's verdict (and the first
// differing buffer) equals the op-level subject's.
TEST_P(TorchSubjectTest, VerdictsAgreeWithTheOpLevelSubject) {
  const int cases = env_int("CAPCHECK_DIFFERENTIAL_CASES", GetParam() == "cuda" ? 100 : 60);
  auto torch_subjects = subjects();
  Harness op_level(make_sim_backend(), make_trtllm_subject);
  std::vector<const PropertyInfo*> properties;
  for (const auto& p : all_properties()) {
    if (!p.canary && p.name != "backends_agree") properties.push_back(&p);
  }
  std::vector<std::pair<Protocol, Mutant>> variants;
  for (int p = 0; p < kProtocolCount; ++p) variants.emplace_back(static_cast<Protocol>(p), Mutant::kNone);
  for (int m = 1; m < kMutantCount; ++m) {
    // Only the mutants the LibTorch runner implements (its entry says which).
    if (!implements_mutant(find_subject("trtllm-torch"), static_cast<Mutant>(m))) continue;
    variants.emplace_back(Protocol::kReference, static_cast<Mutant>(m));
  }
  for (const auto& [protocol, mutant] : variants) {
    GenOptions gen;
    gen.protocol = protocol;
    gen.mutant = mutant;
    const rc::Gen<Scenario> scenarios = gen_scenario(gen);
    rc::Random random(0xd1ff + static_cast<std::uint64_t>(protocol) * 16 + static_cast<std::uint64_t>(mutant));
    int failing = 0;
    for (int i = 0; i < cases; ++i) {
      const Scenario s = scenarios(random.split(), i % 101).value();
      const Verdict v = verdicts_agree(*torch_subjects, op_level, s, properties, &failing);
      ASSERT_TRUE(v.passed) << protocol_name(protocol) << "/" << mutant_name(mutant) << ": " << v.message
                            << "\n" << summarize(s) << "\n" << encode_token(s) << "\n"
                            << (v.notes.empty() ? "" : v.notes[0] + v.notes[1]);
    }
    // Agreement on failures too: every variant but the correct ones fails somewhere.
    if (protocol != Protocol::kReference && protocol != Protocol::kSnapshotRestore) {
      EXPECT_GT(failing, 0) << protocol_name(protocol);
    }
    if (mutant != Mutant::kNone) EXPECT_GT(failing, 0) << mutant_name(mutant);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, TorchSubjectTest, ::testing::Values("emulator", "cuda"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace capcheck
