// Every property against every protocol and mutant: `reference` passes all,
// each protocol/mutant is killed by the properties expected to kill it, every
// property kills at least one, and the canary fails.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "capcheck/harness.h"
#include "capcheck/instance.h"
#include "capcheck/trtllm_subject.h"
#include "capcheck/errors.h"
#include "capcheck/sim_backend.h"
#include "capcheck/runner.h"

namespace capcheck {
namespace {

constexpr int kCases = 300;

RunResult run(Harness& harness, const char* property, Protocol protocol, Mutant mutant,
              bool draft_loop = true, std::uint64_t seed = 1) {
  RunConfig config;
  config.gen.draft_loop = draft_loop;
  config.cases = kCases;
  config.seed = seed;
  config.gen.protocol = protocol;
  config.gen.mutant = mutant;
  return run_property(harness, find_property(property), config);
}

const char* const kProperties[] = {"capture_preserves_inputs",       "first_replay_matches_eager",
                                   "warmup_count_invariant",         "postprocess_inverts_preprocess",
                                   "replays_match_eager",            "padding_is_inert",
                                   "static_inputs_fully_copied",     "replays_track_new_offsets",
                                   "bucket_reuse_matches_eager",     "graph_cache_keys_distinct",
                                   "capture_state_does_not_leak",    "graph_outputs_survive_other_replays"};

TEST(Properties, ReferenceWithoutMutantPassesEveryProperty) {
  Harness harness(make_sim_backend(), make_trtllm_subject);
  for (const char* property : kProperties) {
    const RunResult result = run(harness, property, Protocol::kReference, Mutant::kNone,
                                 /*draft_loop=*/true);
    EXPECT_TRUE(result.passed) << property << ": " << format_verdict(result.verdict)
                               << summarize(*result.counterexample);
    EXPECT_EQ(result.cases_passed, kCases);
  }
}

struct Expectation {
  bool draft_loop;
  Protocol protocol;
  Mutant mutant;
  std::vector<std::string> killed_by;  // exactly these properties fail
};

TEST(Properties, EachProtocolAndMutantIsKilledByTheExpectedProperties) {
  const std::string capture = "capture_preserves_inputs", first = "first_replay_matches_eager",
                    warmups = "warmup_count_invariant", inverse = "postprocess_inverts_preprocess",
                    replays = "replays_match_eager", padding = "padding_is_inert",
                    statics = "static_inputs_fully_copied", tracks = "replays_track_new_offsets",
                    bucket = "bucket_reuse_matches_eager", keys = "graph_cache_keys_distinct",
                    leak = "capture_state_does_not_leak", outputs = "graph_outputs_survive_other_replays";
  const std::vector<Expectation> table = {
      // Without the draft loop (the bug of PR #7373 alone).
      {false, Protocol::kReference, Mutant::kNone, {}},
      {false, Protocol::kPreFix, Mutant::kNone, {capture, first, warmups, replays, tracks, keys}},
      {false, Protocol::kSeedPr, Mutant::kNone, {capture, first, replays, tracks, keys}},
      {false, Protocol::kSnapshotRestore, Mutant::kNone, {capture}},
      // With the one-model draft loop: its kv_lens drift during warmups is undone
      // only by snapshot-restore and reference (PR #11696).
      {true, Protocol::kReference, Mutant::kNone, {}},
      {true, Protocol::kPreFix, Mutant::kNone, {capture, first, warmups, replays, tracks, keys}},
      {true, Protocol::kSeedPr, Mutant::kNone, {capture, first, warmups, replays, tracks, keys}},
      {true, Protocol::kSnapshotRestore, Mutant::kNone, {capture}},
      {true, Protocol::kReference, Mutant::kChunkedBranchAsymmetry,
       {capture, first, warmups, inverse, replays, tracks, keys}},
      {true, Protocol::kReference, Mutant::kPartialStaticCopy, {first, replays, statics, tracks, bucket, keys, leak}},
      {true, Protocol::kReference, Mutant::kPaddedRowsNotInert, {padding, bucket}},
      {true, Protocol::kReference, Mutant::kReplayWithoutPrepare, {replays, tracks, keys, leak}},
      // Only follow-ups with new offsets, or a capture on another batch of
      // the key, see offsets kept from the capture.
      {true, Protocol::kReference, Mutant::kStaleOffsets, {tracks, bucket, keys}},
      // Only two keys one draft length apart collide in a cache keyed on the batch size.
      {true, Protocol::kReference, Mutant::kCacheKeyWithoutDraftLen, {keys}},
      // Only an eager forward on the instance that captured sees a capture-only switch left on.
      {true, Protocol::kReference, Mutant::kCaptureOverrideLeaks, {leak}},
      // Misaligned position offsets show only against the unpadded batch or another padding.
      {true, Protocol::kReference, Mutant::kOffsetMisalignment, {padding, bucket}},
      // A count baked at capture shows only when the key serves another composition.
      {true, Protocol::kReference, Mutant::kHostValueBaked, {bucket}},
      // Only a replay of an earlier key after a larger batch's prepare meets the
      // freed kv_lens (rule 5).
      {true, Protocol::kReference, Mutant::kReallocAfterCapture, {outputs}},
      // Only a second key's replay overwrites an output given back to the pool (rule 6).
      {true, Protocol::kReference, Mutant::kPoolOutputAlias, {outputs}},
  };
  Harness harness(make_sim_backend(), make_trtllm_subject);
  std::map<std::string, int> kills;
  for (const auto& row : table) {
    std::vector<std::string> killed;
    for (const char* property : kProperties) {
      if (!run(harness, property, row.protocol, row.mutant, row.draft_loop).passed) {
        killed.push_back(property);
        ++kills[property];
      }
    }
    EXPECT_EQ(killed, row.killed_by) << protocol_name(row.protocol) << " / "
                                     << mutant_name(row.mutant) << " draft_loop=" << row.draft_loop;
  }
  for (const char* property : kProperties) {
    EXPECT_GT(kills[property], 0) << property << " kills no protocol or mutant: it proves nothing";
  }
}

TEST(Properties, SnapshotRestoreFixesKvLensButNotStaticPositionIds) {
  Harness harness(make_sim_backend(), make_trtllm_subject);
  const RunResult result =
      run(harness, "capture_preserves_inputs", Protocol::kSnapshotRestore, Mutant::kNone);
  ASSERT_FALSE(result.passed);
  ASSERT_TRUE(result.verdict.mismatch.has_value());
  EXPECT_EQ(result.verdict.mismatch->buffer, "static_position_ids");
  bool names_kv_lens = false;
  for (const auto& note : result.verdict.notes) {
    names_kv_lens |= note.find("kv_lens_cuda") != std::string::npos;
  }
  EXPECT_FALSE(names_kv_lens) << format_verdict(result.verdict);
}

TEST(Properties, ViolationNamesTheBreakingOperation) {
  Harness harness(make_sim_backend(), make_trtllm_subject);
  const RunResult result =
      run(harness, "capture_preserves_inputs", Protocol::kSeedPr, Mutant::kNone, false);
  ASSERT_FALSE(result.passed);
  const std::string report = format_verdict(result.verdict);
  EXPECT_NE(report.find("changed by capture: static_position_ids (2 elements), kv_lens_cuda (1 element)"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("postprocess after capture: sub static_position_ids[0:2] -= "
                        "previous_pos_id_offsets[0:2] (executed eagerly)"),
            std::string::npos)
      << report;
}

// A backend with a wrong add kernel (adds twice on slices of 3 or more):
// backends_agree must notice it against the sim.
class DoubleAddBackend final : public Backend {
 public:
  DoubleAddBackend() : inner_(make_sim_backend()) {}
  std::string_view name() const override { return "double-add"; }
  Buffer allocate(std::string_view label, std::int64_t count) override { return inner_->allocate(label, count); }
  void free(Buffer buffer) override { inner_->free(buffer); }
  std::string label(Buffer buffer) const override { return inner_->label(buffer); }
  void upload(Slice dst, const std::int32_t* src) override { inner_->upload(dst, src); }
  void download(Slice src, std::int32_t* dst) override { inner_->download(src, dst); }
  void launch(const Op& op) override {
    inner_->launch(op);
    if (op.kind == OpKind::kAdd && op.dst.count >= 3) inner_->launch(op);
  }
  void begin_capture() override { inner_->begin_capture(); }
  Graph end_capture() override { return inner_->end_capture(); }
  void replay(Graph graph) override { inner_->replay(graph); }
  void destroy_graph(Graph graph) override { inner_->destroy_graph(graph); }
  void synchronize() override { inner_->synchronize(); }
  bool capturing() const override { return inner_->capturing(); }
  const std::vector<RecordedOp>* recorded_ops(Graph graph) const override {
    return inner_->recorded_ops(graph);
  }
  void annotate(const char* phase) override { inner_->annotate(phase); }

 private:
  std::unique_ptr<Backend> inner_;
};

TEST(Properties, BackendsAgreeCatchesAWrongKernelAndNeedsAPeer) {
  Harness harness(make_sim_backend(), make_trtllm_subject);
  EXPECT_THROW(check_property(find_property("backends_agree"), harness, Scenario{}), UsageError);
  harness.add_peer(make_sim_backend());
  EXPECT_TRUE(run(harness, "backends_agree", Protocol::kSeedPr, Mutant::kNone).passed);
  Harness broken(make_sim_backend(), make_trtllm_subject);
  broken.add_peer(std::make_unique<DoubleAddBackend>());
  const RunResult result = run(broken, "backends_agree", Protocol::kReference, Mutant::kNone);
  ASSERT_FALSE(result.passed);
  EXPECT_NE(result.verdict.message.find("double-add disagrees with sim after"), std::string::npos)
      << result.verdict.message;
}

TEST(Properties, CanaryFails) {
  Harness harness(make_sim_backend(), make_trtllm_subject);
  const RunResult result = run(harness, "canary_forward_never_changes_kv_lens",
                               Protocol::kReference, Mutant::kNone);
  EXPECT_FALSE(result.passed);
  EXPECT_TRUE(find_property("canary_forward_never_changes_kv_lens").canary);
}

TEST(Properties, UnknownPropertyListsTheKnownOnes) {
  try {
    find_property("capture_preserves_input");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("known: capture_preserves_inputs"), std::string::npos);
  }
}

// A user subject written against the public interface that reads device
// memory back in the middle of its capture: the property reports the illegal
// call (CUDA error 900) as a violation instead of crashing the run.
class DownloadingSubject final : public Subject {
 public:
  DownloadingSubject(Backend& backend, const SubjectLimits&)
      : backend_(backend), buffer_(backend.allocate("state", 1)) {
    persistent_.push_back(NamedSlice{"state", whole(buffer_)});
  }
  ~DownloadingSubject() override { backend_.free(buffer_); }
  void reset() override { backend_.fill(whole(buffer_), 0); }
  void prepare(const Scenario&) override {}
  const std::vector<NamedSlice>& persistent_buffers() const override { return persistent_; }
  void preprocess() override {}
  void postprocess() override {}
  Slice forward_eager() override { return whole(buffer_); }
  void capture() override {
    backend_.begin_capture();
    std::int32_t value = 0;
    backend_.download(whole(buffer_), &value);  // illegal while capturing
    backend_.end_capture();
  }
  Slice replay() override { return whole(buffer_); }

 private:
  Backend& backend_;
  Buffer buffer_;
  std::vector<NamedSlice> persistent_;
};

TEST(Properties, IllegalCaptureCallInAUserSubjectIsAViolation) {
  Harness harness(make_sim_backend(), [](Backend& backend, const SubjectLimits& limits) {
    return std::unique_ptr<Subject>(new DownloadingSubject(backend, limits));
  });
  const Verdict verdict =
      check_property(find_property("capture_preserves_inputs"), harness, Scenario{});
  EXPECT_FALSE(verdict.passed);
  EXPECT_NE(verdict.message.find("capture-unsupported (900)"), std::string::npos)
      << verdict.message;
  EXPECT_FALSE(harness.backend().capturing());
}

// Outputs of another size or element type are a difference, never a crash:
// a subject that replays another key's graph returns fewer elements.
TEST(Observations, ADifferentSizeOrTypeIsADifference) {
  auto ints = [](std::vector<std::int32_t> v) {
    Observed o;
    o.name = "logits";
    o.bytes.resize(v.size() * sizeof(std::int32_t));
    std::memcpy(o.bytes.data(), v.data(), o.bytes.size());
    return o;
  };
  Mismatch m;
  EXPECT_FALSE(first_difference(ints({1, 2}), ints({1, 2}), &m));
  ASSERT_TRUE(first_difference(ints({1, 2}), ints({1}), &m));
  EXPECT_EQ(m.index, 1);
  EXPECT_EQ(m.expected, "2");
  EXPECT_EQ(m.actual, "nothing (1 elements in all)");
  ASSERT_TRUE(first_difference(ints({1}), ints({1, 5}), &m));
  EXPECT_EQ(m.index, 1);
  EXPECT_EQ(m.actual, "5");
  ASSERT_TRUE(first_difference(ints({1, 3}), ints({1, 4, 5}), &m));
  EXPECT_EQ(m.index, 1);
  Observed floats = ints({1, 2});
  floats.type = ElementType::kFloat32;
  EXPECT_TRUE(first_difference(ints({1, 2}), floats, &m));
  EXPECT_EQ(m.location, "logits (element type)");
}

// Note [shared capture]: counts the captures the subject itself runs.
class CountingSubjects final : public Subjects {
 public:
  class CountingInstance final : public Instance {
   public:
    explicit CountingInstance(int& captures) : captures_(captures) {}
    Instance* inner = nullptr;
    void prepare(const Scenario& s) override { inner->prepare(s); }
    void preprocess() override { inner->preprocess(); }
    void postprocess() override { inner->postprocess(); }
    void capture() override {
      ++captures_;
      inner->capture();
    }
    void replay(Outputs& o) override { inner->replay(o); }
    void forward_eager(Outputs& o) override { inner->forward_eager(o); }
    void snapshot(Snapshot& into) override { inner->snapshot(into); }
    void poison_static_inputs(std::int32_t pattern) override { inner->poison_static_inputs(pattern); }

   private:
    int& captures_;
  };

  Instance& graph(const Scenario& s) override {
    graph_.inner = &harness_.graph(s);
    return graph_;
  }
  Instance& eager(const Scenario& s) override { return harness_.eager(s); }
  std::vector<Subjects*> peer_subjects() override { return {}; }
  std::string device_name() const override { return "sim"; }
  void abandon_capture() override { harness_.abandon_capture(); }

  int captures = 0;

 private:
  Harness harness_{make_sim_backend(), make_trtllm_subject};
  CountingInstance graph_{captures};
};

Scenario generated_scenario(Protocol protocol) {
  GenOptions options;
  options.protocol = protocol;
  return gen_scenario(options)(rc::Random(42), 30).value();
}

TEST(SharedCapture, TheNextPropertyOnTheSameScenarioReusesTheCapture) {
  CountingSubjects counting;
  const auto guarded = guard_subjects(counting);
  const Scenario s = generated_scenario(Protocol::kSeedPr);
  const Verdict fresh_f = check_property(find_property("first_replay_matches_eager"), counting, s);
  ASSERT_EQ(counting.captures, 1);
  check_property(find_property("capture_preserves_inputs"), *guarded, s);
  ASSERT_EQ(counting.captures, 2);
  const Verdict shared_f = check_property(find_property("first_replay_matches_eager"), *guarded, s);
  EXPECT_EQ(counting.captures, 2);  // reused
  EXPECT_EQ(shared_f.passed, fresh_f.passed);
  EXPECT_EQ(shared_f.message, fresh_f.message);
  // The replay made the stage unknown: the next one captures.
  check_property(find_property("first_replay_matches_eager"), *guarded, s);
  EXPECT_EQ(counting.captures, 3);
}

TEST(SharedCapture, AnotherScenarioOrAnyOtherCallCapturesAgain) {
  CountingSubjects counting;
  const auto guarded = guard_subjects(counting);
  const Scenario s = generated_scenario(Protocol::kReference);
  Scenario other = s;
  other.warmups_count = s.warmups_count == 0 ? 1 : 0;
  const PropertyInfo& capture = find_property("capture_preserves_inputs");
  const PropertyInfo& first = find_property("first_replay_matches_eager");
  check_property(capture, *guarded, s);
  check_property(first, *guarded, other);
  EXPECT_EQ(counting.captures, 2);
  check_property(capture, *guarded, s);
  guarded->eager(s);
  check_property(first, *guarded, s);
  EXPECT_EQ(counting.captures, 4);
  check_property(capture, *guarded, s);
  guarded->set_explanations(true);
  check_property(first, *guarded, s);
  EXPECT_EQ(counting.captures, 6);
}

// Note [lockstep]: the same results as one property after another.
TEST(Lockstep, GivesTheResultsOfOnePropertyAfterAnother) {
  Harness harness(make_sim_backend(), make_trtllm_subject);
  const std::vector<const PropertyInfo*> properties = {&find_property("capture_preserves_inputs"),
                                                       &find_property("first_replay_matches_eager"),
                                                       &find_property("replays_match_eager")};
  RunConfig config;
  config.cases = 1200;  // two batches
  config.seed = 11;
  const auto together = run_lockstep(harness, properties, config);
  ASSERT_TRUE(together.has_value());
  for (std::size_t i = 0; i < properties.size(); ++i) {
    const RunResult alone = run_property(harness, *properties[i], config);
    EXPECT_TRUE((*together)[i].passed);
    EXPECT_EQ((*together)[i].property, alone.property);
    EXPECT_EQ((*together)[i].cases_passed, alone.cases_passed);
    EXPECT_EQ((*together)[i].cases_passed, 1200);
  }
  // A failure: nothing, so that each runs alone and shrinks as alone.
  config.gen.protocol = Protocol::kSeedPr;
  EXPECT_FALSE(run_lockstep(harness, properties, config).has_value());
}

}  // namespace
}  // namespace capcheck
