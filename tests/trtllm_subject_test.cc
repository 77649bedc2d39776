// The built-in TensorRT-LLM subject against hand-computed cases, including the
// H200 measurement of the seed-pr bug (docs/properties.md).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/sim_backend.h"
#include "capcheck/token.h"
#include "capcheck/trtllm_subject.h"
#include "capcheck/detail/model.h"
#include "capcheck/errors.h"
#include "support/test_data.h"

namespace capcheck {
namespace {

using test::data_file;

const NamedSlice& persistent(const Subject& subject, const std::string& name) {
  for (const auto& s : subject.persistent_buffers()) {
    if (s.name == name) return s;
  }
  throw std::runtime_error("no persistent buffer " + name);
}

std::vector<std::int32_t> read(Backend& backend, Slice slice, std::int64_t count) {
  std::vector<std::int32_t> values(static_cast<std::size_t>(count));
  backend.download(Slice{slice.buffer, slice.offset, count}, values.data());
  return values;
}

class TrtllmSubjectTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> backend_ = make_sim_backend();
  std::unique_ptr<Subject> subject_ = make_trtllm_subject(*backend_, SubjectLimits{});
  std::vector<std::int32_t> kv_lens() {
    return read(*backend_, persistent(*subject_, "kv_lens_cuda").slice, 4);
  }
};

// On an H200 with PyTorch 2.11 (docs/properties.md), kv_lens [10,20,30,40] with
// generation rows 1..3 and kv offset 3 became [10,17,27,37] after a seed-pr
// capture, and the first replay computed with [10,20,30,40] where eager sees
// [10,23,33,43].
TEST_F(TrtllmSubjectTest, SeedPrReproducesTheH200Measurement) {
  const Scenario s = from_json(data_file("h200_seed_pr.json"));
  subject_->reset();
  subject_->prepare(s);
  ASSERT_EQ(kv_lens(), (std::vector<std::int32_t>{10, 20, 30, 40}));
  subject_->capture();
  EXPECT_EQ(kv_lens(), (std::vector<std::int32_t>{10, 17, 27, 37}));
  EXPECT_EQ(read(*backend_, persistent(*subject_, "static_position_ids").slice, 10),
            (std::vector<std::int32_t>{0, 0, 0, 0, -1, -1, -1, -1, -1, -1}));
  const Slice out = subject_->replay();
  EXPECT_EQ(kv_lens(), (std::vector<std::int32_t>{10, 20, 30, 40}));
  const auto replayed = read(*backend_, out, 10);
  // The replay computed with kv_lens [10,20,30,40] and preprocessed positions.
  EXPECT_EQ(replayed[4], model_mix(201, 19, 20));
  EXPECT_EQ(replayed[9], model_mix(402, 40, 40));

  auto eager = make_trtllm_subject(*backend_, SubjectLimits{});
  eager->reset();
  eager->prepare(s);
  const auto expected = read(*backend_, eager->forward_eager(), 10);
  EXPECT_EQ(read(*backend_, persistent(*eager, "kv_lens_cuda").slice, 4),
            (std::vector<std::int32_t>{10, 23, 33, 43}));
  EXPECT_EQ(expected[4], model_mix(201, 19, 23));
  EXPECT_EQ(expected[0], replayed[0]);  // the context row is not offset
  EXPECT_NE(expected[4], replayed[4]);
}

TEST_F(TrtllmSubjectTest, ProtocolsLeaveKvLensAsTheirPullRequestsDid) {
  Scenario s = from_json(data_file("h200_seed_pr.json"));
  const std::vector<std::pair<Protocol, std::vector<std::int32_t>>> expected = {
      {Protocol::kReference, {10, 20, 30, 40}},
      {Protocol::kPreFix, {10, 26, 36, 46}},  // two warmups accumulate +3 each
      {Protocol::kSeedPr, {10, 17, 27, 37}},
      {Protocol::kSnapshotRestore, {10, 20, 30, 40}},
  };
  for (const auto& [protocol, kv] : expected) {
    s.protocol = protocol;
    subject_->reset();
    subject_->prepare(s);
    subject_->capture();
    EXPECT_EQ(kv_lens(), kv) << protocol_name(protocol);
  }
}

TEST_F(TrtllmSubjectTest, ChunkedBranchUpdatesOnlyChunkedContextRows) {
  Scenario s;
  s.key = GraphKey{3, 1};
  s.num_contexts = 2;
  s.num_chunked_ctx_requests = 1;
  s.num_generations = 1;
  s.seq_lens = {2, 3, 2};
  s.kv_lens = {2, 13, 30};
  s.previous_pos_id_offsets = {2, 2};
  s.previous_kv_lens_offsets = {-1};  // one per chunked request
  s.input_ids = {1, 2, 3, 4, 5, 6, 7};
  s.position_ids = {0, 1, 10, 11, 12, 28, 29};
  validate(s);
  subject_->reset();
  subject_->prepare(s);
  subject_->preprocess();
  EXPECT_EQ(read(*backend_, persistent(*subject_, "kv_lens_cuda").slice, 3),
            (std::vector<std::int32_t>{2, 12, 30}));
  EXPECT_EQ(read(*backend_, persistent(*subject_, "position_ids").slice, 7),
            (std::vector<std::int32_t>{0, 1, 10, 11, 12, 30, 31}));
  subject_->postprocess();
  EXPECT_EQ(read(*backend_, persistent(*subject_, "kv_lens_cuda").slice, 3),
            (std::vector<std::int32_t>{2, 13, 30}));
}

TEST_F(TrtllmSubjectTest, ReplayBeforeCaptureIsAUsageError) {
  Scenario s;
  subject_->reset();
  subject_->prepare(s);
  EXPECT_THROW(subject_->replay(), UsageError);
}

TEST_F(TrtllmSubjectTest, InvalidScenarioIsRejectedAtPrepare) {
  Scenario s;
  s.num_generations = 2;  // the vectors still describe one request
  s.key.batch_size = 2;
  subject_->reset();
  EXPECT_THROW(subject_->prepare(s), UsageError);
}

TEST_F(TrtllmSubjectTest, ScenarioLargerThanTheLimitsIsRejected) {
  auto small = make_trtllm_subject(*backend_, SubjectLimits{1, 1});
  Scenario s;
  s.key.draft_len = 1;
  s.seq_lens = {2};
  s.kv_lens = {2};
  s.previous_pos_id_offsets = {0, 0};
  s.input_ids = {0, 0};
  s.position_ids = {0, 1};
  EXPECT_THROW(small->prepare(s), UsageError);
}

TEST_F(TrtllmSubjectTest, HarnessGrowsItsSubjectsForLargerScenarios) {
  Harness harness(make_sim_backend(), make_trtllm_subject);
  Scenario s;
  s.key = GraphKey{100, 0};
  s.num_generations = 100;
  s.seq_lens.assign(100, 1);
  s.kv_lens.assign(100, 1);
  s.previous_pos_id_offsets.assign(100, 0);
  s.previous_kv_lens_offsets.assign(100, 0);
  s.input_ids.assign(100, 0);
  s.position_ids.assign(100, 0);
  s.num_accepted_tokens.assign(100, 0);
  Subject& subject = harness.graph_subject(s);
  EXPECT_NO_THROW(subject.prepare(s));
}

}  // namespace
}  // namespace capcheck

namespace capcheck {
namespace {

Verdict outputs_survive(Mutant mutant) {
  Scenario s = from_json(test::data_file("h200_seed_pr.json"));
  s.protocol = Protocol::kReference;
  s.mutant = mutant;
  Harness harness(make_sim_backend(), make_trtllm_subject);
  return check_property(find_property("graph_outputs_survive_other_replays"), harness, s);
}

bool mentions(const Verdict& v, const std::string& text) {
  if (v.message.find(text) != std::string::npos) return true;
  for (const auto& note : v.notes) {
    if (note.find(text) != std::string::npos) return true;
  }
  return false;
}

// Each key's output is its own block of the shared pool; the mutant gives it
// back after capture, and the second key's capture takes it (rule 6).
TEST(TrtllmSubjectPool, AnOutputGivenBackToThePoolIsOverwrittenByTheNextKey) {
  EXPECT_TRUE(outputs_survive(Mutant::kNone).passed);
  const Verdict v = outputs_survive(Mutant::kPoolOutputAlias);
  ASSERT_FALSE(v.passed);
  EXPECT_TRUE(mentions(v, "capture rule 6")) << format_verdict(v);
}

// The second key has one request more: the mutant reallocates kv_lens_cuda
// for it, and the first key's graph refers to the freed buffer (rule 5).
TEST(TrtllmSubjectPool, KvLensReallocatedAfterACaptureLeavesItsGraphDangling) {
  const Verdict v = outputs_survive(Mutant::kReallocAfterCapture);
  ASSERT_FALSE(v.passed);
  EXPECT_TRUE(mentions(v, "kv_lens_cuda' was freed or reallocated")) << format_verdict(v);
}

}  // namespace
}  // namespace capcheck
