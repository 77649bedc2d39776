// The capture rules of docs/capture-rules.md, pinned on every backend this build has.
// Each test fails if its rule is broken.
#include <gtest/gtest.h>

#include <vector>

#include "capcheck/registry.h"
#include "capcheck/errors.h"
#include "capcheck/detail/model.h"
#include <functional>

namespace capcheck {
namespace {

std::vector<std::string> host_backends() {
  std::vector<std::string> names;
  for (const auto& info : list_backends()) {
    if (info.available && info.name != "cuda") names.push_back(info.name);
  }
  return names;
}

class CaptureRules : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { backend_ = make_backend(GetParam()); }

  std::vector<std::int32_t> read(Buffer buffer) {
    std::vector<std::int32_t> values(static_cast<std::size_t>(buffer.size));
    backend_->download(whole(buffer), values.data());
    return values;
  }
  void write(Buffer buffer, const std::vector<std::int32_t>& values) {
    backend_->upload(Slice{buffer, 0, static_cast<std::int64_t>(values.size())}, values.data());
  }
  BackendErrorKind error_of(const std::function<void()>& call) {
    try {
      call();
    } catch (const BackendError& e) {
      return e.kind();
    }
    ADD_FAILURE() << "expected a BackendError";
    return BackendErrorKind::kDevice;
  }

  std::unique_ptr<Backend> backend_;
};

TEST_P(CaptureRules, AllocationIsZeroFilled) {
  const Buffer b = backend_->allocate("b", 5);
  EXPECT_EQ(read(b), std::vector<std::int32_t>(5, 0));
}

TEST_P(CaptureRules, EagerOpsRunImmediately) {
  const Buffer a = backend_->allocate("a", 4);
  const Buffer b = backend_->allocate("b", 4);
  write(a, {1, 2, 3, 4});
  write(b, {10, 20, 30, 40});
  backend_->add(range(a, 1, 3), range(b, 0, 2));
  EXPECT_EQ(read(a), (std::vector<std::int32_t>{1, 12, 23, 4}));
  backend_->sub(whole(a), whole(b));
  EXPECT_EQ(read(a), (std::vector<std::int32_t>{-9, -8, -7, -36}));
  backend_->copy(range(b, 0, 2), range(b, 2, 4));
  EXPECT_EQ(read(b), (std::vector<std::int32_t>{30, 40, 30, 40}));
  backend_->fill(range(b, 1, 4), 7);
  EXPECT_EQ(read(b), (std::vector<std::int32_t>{30, 7, 7, 7}));
}

// Rule 1: a device op issued while capturing is recorded, not run.
TEST_P(CaptureRules, OpsDuringCaptureLeaveMemoryUnchanged) {
  const Buffer a = backend_->allocate("a", 3);
  const Buffer b = backend_->allocate("b", 3);
  write(a, {1, 2, 3});
  write(b, {5, 5, 5});
  backend_->begin_capture();
  EXPECT_TRUE(backend_->capturing());
  backend_->add(whole(a), whole(b));
  backend_->fill(whole(b), 9);
  const Graph graph = backend_->end_capture();
  EXPECT_FALSE(backend_->capturing());
  EXPECT_EQ(read(a), (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(read(b), (std::vector<std::int32_t>{5, 5, 5}));
  backend_->replay(graph);
  EXPECT_EQ(read(a), (std::vector<std::int32_t>{6, 7, 8}));
  EXPECT_EQ(read(b), (std::vector<std::int32_t>{9, 9, 9}));
}

// Rule 2: host values are baked at capture; device data is read at replay.
TEST_P(CaptureRules, HostValuesAreBakedDeviceDataIsReadAtReplay) {
  const Buffer a = backend_->allocate("a", 2);
  const Buffer b = backend_->allocate("b", 2);
  std::int32_t host_value = 3;
  backend_->begin_capture();
  backend_->fill(range(a, 0, 1), host_value);
  backend_->copy(range(a, 1, 2), range(b, 0, 1));
  const Graph graph = backend_->end_capture();
  host_value = 100;  // changing the host variable after capture changes nothing
  write(b, {42, 0});  // changing device data before replay is seen by the replay
  backend_->replay(graph);
  EXPECT_EQ(read(a), (std::vector<std::int32_t>{3, 42}));
}

// Rule 3: every replay re-runs every op; in-place updates accumulate.
TEST_P(CaptureRules, ReplaysAccumulateInPlaceUpdates) {
  const Buffer kv = backend_->allocate("kv_lens", 2);
  const Buffer offsets = backend_->allocate("offsets", 2);
  write(kv, {10, 20});
  write(offsets, {3, -1});
  backend_->begin_capture();
  backend_->add(whole(kv), whole(offsets));
  const Graph graph = backend_->end_capture();
  for (int i = 0; i < 3; ++i) backend_->replay(graph);
  EXPECT_EQ(read(kv), (std::vector<std::int32_t>{19, 17}));
}

// Rule 4: device-to-host reads and synchronization during capture invalidate
// it (900); end_capture then fails (901) and yields no graph.
TEST_P(CaptureRules, DownloadDuringCaptureInvalidatesIt) {
  const Buffer a = backend_->allocate("a", 1);
  backend_->begin_capture();
  backend_->fill(whole(a), 1);
  std::int32_t value = 0;
  EXPECT_EQ(error_of([&] { backend_->download(whole(a), &value); }),
            BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(error_of([&] { backend_->end_capture(); }), BackendErrorKind::kCaptureInvalidated);
  EXPECT_FALSE(backend_->capturing());
  EXPECT_EQ(read(a), std::vector<std::int32_t>{0});
  // The stream is usable again: a new capture works.
  backend_->begin_capture();
  backend_->fill(whole(a), 2);
  backend_->replay(backend_->end_capture());
  EXPECT_EQ(read(a), std::vector<std::int32_t>{2});
}

TEST_P(CaptureRules, SynchronizeAndUploadDuringCaptureInvalidateIt) {
  const Buffer a = backend_->allocate("a", 1);
  backend_->begin_capture();
  EXPECT_EQ(error_of([&] { backend_->synchronize(); }), BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(error_of([&] { backend_->end_capture(); }), BackendErrorKind::kCaptureInvalidated);
  backend_->begin_capture();
  const std::int32_t value = 1;
  EXPECT_EQ(error_of([&] { backend_->upload(whole(a), &value); }),
            BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(error_of([&] { backend_->end_capture(); }), BackendErrorKind::kCaptureInvalidated);
}

TEST_P(CaptureRules, AllocateAndFreeDuringCaptureInvalidateIt) {
  const Buffer a = backend_->allocate("a", 1);
  backend_->begin_capture();
  EXPECT_EQ(error_of([&] { backend_->allocate("b", 1); }), BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(error_of([&] { backend_->end_capture(); }), BackendErrorKind::kCaptureInvalidated);
  backend_->begin_capture();
  EXPECT_EQ(error_of([&] { backend_->free(a); }), BackendErrorKind::kCaptureUnsupported);
  EXPECT_EQ(error_of([&] { backend_->end_capture(); }), BackendErrorKind::kCaptureInvalidated);
  EXPECT_EQ(read(a), std::vector<std::int32_t>{0});  // still allocated
}

TEST_P(CaptureRules, BeginWhileCapturingIsAnError) {
  backend_->begin_capture();
  EXPECT_EQ(error_of([&] { backend_->begin_capture(); }), BackendErrorKind::kIllegalState);
  backend_->end_capture();
  EXPECT_EQ(error_of([&] { backend_->end_capture(); }), BackendErrorKind::kIllegalState);
}

TEST_P(CaptureRules, CaptureOnTheLegacyStreamIsAnError) {
  BackendOptions options;
  options.legacy_stream = true;
  auto legacy = make_backend(GetParam(), options);
  EXPECT_EQ(error_of([&] { legacy->begin_capture(); }), BackendErrorKind::kCaptureUnsupported);
  EXPECT_FALSE(legacy->capturing());
}

// Rule 5: a buffer freed (or its slot reused) after capture is reported at
// replay, never read as stale memory.
TEST_P(CaptureRules, FreedBufferIsReportedAtReplay) {
  const Buffer a = backend_->allocate("a", 2);
  const Buffer b = backend_->allocate("b", 2);
  backend_->begin_capture();
  backend_->add(whole(a), whole(b));
  const Graph graph = backend_->end_capture();
  backend_->free(b);
  const Buffer reused = backend_->allocate("reused", 2);  // may take b's slot
  (void)reused;
  EXPECT_EQ(error_of([&] { backend_->replay(graph); }), BackendErrorKind::kDanglingBuffer);
  EXPECT_EQ(read(a), (std::vector<std::int32_t>{0, 0}));
}

TEST_P(CaptureRules, OutOfBoundsSliceIsRejected) {
  const Buffer a = backend_->allocate("a", 2);
  EXPECT_EQ(error_of([&] { backend_->fill(Slice{a, 1, 2}, 0); }), BackendErrorKind::kInvalidValue);
  EXPECT_EQ(error_of([&] { backend_->add(range(a, 0, 1), range(a, 0, 2)); }),
            BackendErrorKind::kInvalidValue);
}

TEST_P(CaptureRules, DestroyedGraphCannotReplay) {
  backend_->begin_capture();
  const Graph graph = backend_->end_capture();
  backend_->destroy_graph(graph);
  EXPECT_EQ(error_of([&] { backend_->replay(graph); }), BackendErrorKind::kInvalidValue);
}

TEST_P(CaptureRules, ModelStepGathersKvLensPerSequence) {
  const Buffer ids = backend_->allocate("ids", 3);
  const Buffer pos = backend_->allocate("pos", 3);
  const Buffer seq = backend_->allocate("seq", 3);
  const Buffer kv = backend_->allocate("kv", 2);
  const Buffer out = backend_->allocate("out", 3);
  write(ids, {7, -8, 9});
  write(pos, {0, 1, -1});
  write(seq, {0, 1, 1});
  write(kv, {100, 200});
  backend_->model_step(whole(out), whole(ids), whole(pos), whole(seq), whole(kv));
  EXPECT_EQ(read(out), (std::vector<std::int32_t>{model_mix(7, 0, 100), model_mix(-8, 1, 200),
                                                  model_mix(9, -1, 200)}));
  const auto before = read(out);
  write(seq, {0, 2, 1});
  EXPECT_EQ(error_of([&] {
              backend_->model_step(whole(out), whole(ids), whole(pos), whole(seq), whole(kv));
            }),
            BackendErrorKind::kInvalidValue);
  EXPECT_EQ(read(out), before);  // a bad sequence id writes nothing
}

TEST_P(CaptureRules, ModelStepOutputMustNotOverlapItsInputs) {
  const Buffer x = backend_->allocate("x", 4);
  const Buffer seq = backend_->allocate("seq", 2);
  EXPECT_EQ(error_of([&] {
              backend_->model_step(range(x, 0, 2), range(x, 2, 4), range(x, 2, 4), whole(seq),
                                   range(x, 1, 2));
            }),
            BackendErrorKind::kInvalidValue);
  const Buffer out = backend_->allocate("out", 2);
  EXPECT_NO_THROW(backend_->model_step(whole(out), range(x, 0, 2), range(x, 2, 4), whole(seq),
                                       range(x, 0, 1)));
}

INSTANTIATE_TEST_SUITE_P(Backends, CaptureRules, ::testing::ValuesIn(host_backends()),
                         [](const auto& info) { return info.param; });

TEST(ModelMix, EveryInputChangesTheOutput) {
  const std::int32_t base = model_mix(1, 2, 3);
  EXPECT_NE(base, model_mix(0, 2, 3));
  EXPECT_NE(base, model_mix(1, 1, 3));
  EXPECT_NE(base, model_mix(1, 2, 2));
}

TEST(Registry, UnknownBackendIsAUsageError) {
  EXPECT_THROW(make_backend("tpu"), UsageError);
}

TEST(Registry, CudaIsKnownButUnavailableWithoutItsBuild) {
  for (const auto& info : list_backends()) {
    if (info.name == "cuda" && !info.built) {
      EXPECT_THROW(make_backend("cuda"), BackendError);
    }
  }
}

}  // namespace
}  // namespace capcheck
