// The subject registry and what any subject's exceptions become
// (Note [subject exceptions], Note [plugins]).
#include <gtest/gtest.h>

#include <stdexcept>

#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/registry.h"
#include "capcheck/runner.h"
#include "capcheck/subject_registry.h"
#include "capcheck/trtllm_subject.h"

namespace capcheck {
namespace {

// The built-in subject, with a defect of the subject's own code: a replay of
// a batch of three or more requests indexes past a std::vector (.at()).
class ThrowingSubject final : public Subject {
 public:
  enum class Throw { kOutOfRange, kNotAnException };
  ThrowingSubject(Backend& backend, const SubjectLimits& limits, Throw what)
      : inner_(make_trtllm_subject(backend, limits)), what_(what) {}
  void reset() override { inner_->reset(); }
  void prepare(const Scenario& s) override {
    batch_ = s.key.batch_size;
    inner_->prepare(s);
  }
  const std::vector<NamedSlice>& persistent_buffers() const override {
    return inner_->persistent_buffers();
  }
  void preprocess() override { inner_->preprocess(); }
  void postprocess() override { inner_->postprocess(); }
  Slice forward_eager() override { return inner_->forward_eager(); }
  void capture() override { inner_->capture(); }
  Slice replay() override {
    if (batch_ >= 3) {
      if (what_ == Throw::kNotAnException) throw 42;
      const std::vector<int> slots(2);
      (void)slots.at(static_cast<std::size_t>(batch_));  // std::out_of_range
    }
    return inner_->replay();
  }
  std::vector<NamedSlice> static_inputs() const override { return inner_->static_inputs(); }

 private:
  std::unique_ptr<Subject> inner_;
  Throw what_;
  std::int32_t batch_ = 0;
};

SubjectFactory throwing(ThrowingSubject::Throw what) {
  return [what](Backend& backend, const SubjectLimits& limits) {
    return std::make_unique<ThrowingSubject>(backend, limits, what);
  };
}

CAPCHECK_REGISTER_SUBJECT(
    throwing_test_subject,
    op_level_subject_entry("throwing-test", "the built-in subject, throwing on replays of 3+",
                           [](const SubjectOptions& o) {
                             return throwing(o.at("throw") == "int"
                                                 ? ThrowingSubject::Throw::kNotAnException
                                                 : ThrowingSubject::Throw::kOutOfRange);
                           },
                           {{"throw", "what a replay of 3+ requests throws", {"out-of-range", "int"},
                             "out-of-range"}}));

TEST(SubjectExceptions, AnOutOfRangeFromTheSubjectIsAVerdictWithItsMessageAndShrinks) {
  const SubjectEntry& entry = find_subject("throwing-test");
  const auto subjects =
      make_subjects(entry, SubjectRequest{"sim", resolve_options(entry, {})});
  RunConfig config;
  config.cases = 300;
  config.seed = 1;
  const RunResult result =
      run_property(*subjects, find_property("first_replay_matches_eager"), config);
  ASSERT_FALSE(result.passed);
  ASSERT_TRUE(result.counterexample.has_value());
  EXPECT_EQ(result.counterexample->key.batch_size, 3) << "shrunk to the smallest batch that throws";
  EXPECT_NE(result.verdict.message.find("subject 'throwing-test' threw std::out_of_range during "
                                        "replay: vector::_M_range_check"),
            std::string::npos)
      << result.verdict.message;
}

TEST(SubjectExceptions, AnUnnamedSubjectStillGetsAVerdictNotAnInternalError) {
  // Subjects not made by the registry: run_property guards them itself.
  Harness harness(make_backend("sim"), throwing(ThrowingSubject::Throw::kNotAnException));
  RunConfig config;
  config.cases = 300;
  config.seed = 2;
  const RunResult result = run_property(harness, find_property("replays_match_eager"), config);
  ASSERT_FALSE(result.passed);
  EXPECT_NE(result.verdict.message.find("the subject threw an exception of a type not derived "
                                        "from std::exception during replay"),
            std::string::npos)
      << result.verdict.message;
  EXPECT_EQ(result.counterexample->key.batch_size, 3);
}

TEST(SubjectRegistry, OptionsAreCheckedAndCompletedWithDefaults) {
  const SubjectEntry& entry = find_subject("throwing-test");
  EXPECT_EQ(resolve_options(entry, {}).at("throw"), "out-of-range");
  EXPECT_EQ(resolve_options(entry, {{"throw", "int"}}).at("throw"), "int");
  try {
    resolve_options(entry, {{"throw", "float"}});
    ADD_FAILURE() << "a value outside the option's values was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("must be one of out-of-range, int (got 'float')"),
              std::string::npos)
        << e.what();
  }
  try {
    resolve_options(entry, {{"bug", "x"}});
    ADD_FAILURE() << "an unknown option was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("takes no option 'bug'; it takes: throw"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(parse_option_assignments({"novalue"}), UsageError);
  EXPECT_THROW(parse_option_assignments({"a=1", "a=2"}), UsageError);
  EXPECT_EQ(parse_option_assignments({"a=b=c"}).at("a"), "b=c");
}

TEST(SubjectRegistry, NamesAreUniqueAndUnknownOnesListWhatIsRegistered) {
  EXPECT_THROW(register_subject(op_level_subject_entry(
                   "trtllm", "again", [](const SubjectOptions&) {
                     return SubjectFactory(make_trtllm_subject);
                   })),
               UsageError);
  try {
    find_subject("nope");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("trtllm"), std::string::npos) << what;
    EXPECT_NE(what.find("throwing-test"), std::string::npos) << what;
    EXPECT_NE(what.find("--plugin"), std::string::npos) << what;
  }
  const SubjectEntry& entry = find_subject("throwing-test");
  EXPECT_THROW(make_subjects(entry, SubjectRequest{"emulator", resolve_options(entry, {})}),
               UsageError);
}

TEST(SubjectRegistry, APluginThatIsNotAPluginIsAClearUsageError) {
  try {
    load_plugin("/nonexistent/plugin.so");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos) << e.what();
  }
  try {
    load_plugin("/lib/x86_64-linux-gnu/libm.so.6");  // a shared library without subjects
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("registers no capcheck subject"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace capcheck
