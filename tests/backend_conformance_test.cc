// One conformance suite for every backend of this build: the capture rules of
// docs/capture-rules.md (Note [one capture model] in detail/capture_model.h) and
// the backend contract around them, run on sim, torch on the CPU, torch on CUDA
// and cuda alike, with the same error kinds and the capture model's messages.
//
// A backend kind that is compiled in but cannot run here (no device) skips with
// "skipped: no CUDA device: ..."; ctest labels the Sim and TorchCpu instances
// `unit` and the TorchCuda and Cuda instances `gpu` (tests/CMakeLists.txt).
//
// A GPU backend appends its driver's answer to some of the model's messages, in
// parentheses (Note [capture state on the host] in backend/cuda/cuda_backend.cu,
// Note [capture state on the host, torch]): the model's text is checked as the
// start of the message there, exactly on the host backends, and what a driver
// answers is checked for the backend that asks it (expect_driver_*).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/detail/model.h"
#include "capcheck/errors.h"
#include "capcheck/sim_backend.h"
#if defined(CAPCHECK_CONFORMANCE_TORCH)
#include "capcheck/torch_backend.h"
#endif
#if defined(CAPCHECK_CONFORMANCE_CUDA)
#include "capcheck/cuda_backend.h"
#endif

namespace capcheck {
namespace {

constexpr std::int32_t kInt32Min = std::numeric_limits<std::int32_t>::min();
constexpr std::int32_t kInt32Max = std::numeric_limits<std::int32_t>::max();

using Values = std::vector<std::int32_t>;

// ---------------------------------------------------------------------------
// The backend kinds.

enum class Kind { kSim, kTorchCpu, kTorchCuda, kCuda };

/// The test name suffix of a kind.
std::string kind_name(Kind kind) {
  switch (kind) {
    case Kind::kSim: return "Sim";
    case Kind::kTorchCpu: return "TorchCpu";
    case Kind::kTorchCuda: return "TorchCuda";
    case Kind::kCuda: return "Cuda";
  }
  return "Unknown";
}

/// How GoogleTest prints a parameter (and ctest's test names show it).
void PrintTo(Kind kind, std::ostream* out) { *out << kind_name(kind); }

/// The kinds compiled into this build, whether or not a device is present.
std::vector<Kind> compiled_kinds() {
  std::vector<Kind> kinds = {Kind::kSim};
#if defined(CAPCHECK_CONFORMANCE_TORCH)
  kinds.push_back(Kind::kTorchCpu);
  kinds.push_back(Kind::kTorchCuda);
#endif
#if defined(CAPCHECK_CONFORMANCE_CUDA)
  kinds.push_back(Kind::kCuda);
#endif
  return kinds;
}

/// True when `kind` can run on this machine; otherwise `why` says why
/// ("no CUDA device: ...").
bool usable(Kind kind, std::string* why) {
  switch (kind) {
    case Kind::kSim:
    case Kind::kTorchCpu:
      return true;
    case Kind::kTorchCuda:
#if defined(CAPCHECK_CONFORMANCE_TORCH)
      return torch_cuda_available(why);
#else
      break;
#endif
    case Kind::kCuda:
#if defined(CAPCHECK_CONFORMANCE_CUDA)
      return cuda_device_available(why);
#else
      break;
#endif
  }
  *why = kind_name(kind) + " is not built";
  return false;
}

std::unique_ptr<Backend> make(Kind kind, BackendOptions options) {
  switch (kind) {
    case Kind::kSim:
      return make_sim_backend(options);
#if defined(CAPCHECK_CONFORMANCE_TORCH)
    case Kind::kTorchCpu:
      return make_torch_backend(options, TorchDevice::kCpu);
    case Kind::kTorchCuda:
      return make_torch_backend(options, TorchDevice::kCuda);
#endif
#if defined(CAPCHECK_CONFORMANCE_CUDA)
    case Kind::kCuda:
      return make_cuda_backend(options);
#endif
    default:
      break;
  }
  throw std::logic_error(kind_name(kind) + " is not built");
}

// ---------------------------------------------------------------------------
// Errors and the capture model's messages (src/backend/capture_model.cc,
// src/backend/buffer_table.cc), as BackendError::what() spells them.

/// What a call threw: nothing, or a BackendError's kind, message and location.
struct Thrown {
  std::optional<BackendErrorKind> kind;
  std::string message;
  std::string file;
  int line = 0;
};

Thrown thrown_by(const std::function<void()>& body) {
  try {
    body();
  } catch (const BackendError& error) {
    return Thrown{error.kind(), error.what(), error.file() != nullptr ? error.file() : "",
                  error.line()};
  }
  return Thrown{};
}

std::string refused_while_capturing(const std::string& call) {
  return call +
         " failed: capture-unsupported (900): a synchronizing call while the stream is "
         "capturing; the capture is now invalidated";
}
std::string launch_on_invalidated(const std::string& op) {
  return op + " failed: capture-invalidated (901): launch on a stream whose capture was invalidated";
}
const std::string kEndOfInvalidated =
    "end_capture failed: capture-invalidated (901): the capture was invalidated by an illegal "
    "call; no graph was produced";
const std::string kBeginWhileCapturing =
    "begin_capture failed: illegal-state (401): the stream is already capturing";
const std::string kEndWithoutBegin =
    "end_capture failed: illegal-state (401): the stream is not capturing";
const std::string kLegacyStream =
    "begin_capture failed: capture-unsupported (900): capture on the legacy default stream is "
    "not allowed; use a non-blocking stream";
const std::string kReplayWhileCapturing =
    "replay failed: capture-unsupported (900): graph launch while capturing";
std::string not_a_live_graph(const std::string& call) {
  return call + " failed: invalid-value (1): not a live graph of this backend";
}
std::string dangling(const std::string& call, const std::string& label) {
  return call + " failed: dangling-buffer (10001): buffer '" + label +
         "' was freed or reallocated";
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Buffer make_buffer(Backend& backend, const char* label, const Values& values) {
  const Buffer buffer = backend.allocate(label, static_cast<std::int64_t>(values.size()));
  backend.upload(whole(buffer), values.data());
  return buffer;
}

// ---------------------------------------------------------------------------
// The suite.

class Conformance : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    std::string why;
    if (!usable(GetParam(), &why)) GTEST_SKIP() << "skipped: " << why;
    backend_ = make(GetParam(), {});
  }

  Kind kind() const { return GetParam(); }
  bool on_gpu() const { return kind() == Kind::kTorchCuda || kind() == Kind::kCuda; }

  Buffer buffer(const char* label, const Values& values) {
    return make_buffer(*backend_, label, values);
  }
  Values read(Buffer buffer) { return capcheck::read(*backend_, whole(buffer)); }
  Values read(Slice slice) { return capcheck::read(*backend_, slice); }

  /// `thrown` is a BackendError of `kind` with the model's `text`: exactly on a
  /// host backend; on a GPU backend `text` may be followed by the driver's
  /// answer in parentheses.
  void expect_error(const Thrown& thrown, BackendErrorKind expected,
                    const std::string& text) const {
    ASSERT_TRUE(thrown.kind.has_value()) << "nothing thrown; expected: " << text;
    EXPECT_EQ(static_cast<int>(*thrown.kind), static_cast<int>(expected)) << thrown.message;
    if (!on_gpu()) {
      EXPECT_EQ(thrown.message, text);
      return;
    }
    EXPECT_EQ(thrown.message.compare(0, text.size(), text), 0) << thrown.message;
    if (thrown.message.size() > text.size()) {
      EXPECT_EQ(thrown.message.compare(text.size(), 2, " ("), 0) << thrown.message;
      EXPECT_EQ(thrown.message.back(), ')') << thrown.message;
    }
  }

  void expect_answer(const Thrown& thrown, Kind on, const std::string& answer) const {
    if (kind() != on) return;
    EXPECT_NE(thrown.message.find(answer), std::string::npos)
        << kind_name(on) << " should append " << answer << ": " << thrown.message;
  }

  /// A synchronizing call refused during capture: the GPU backends asked the
  /// driver about the capturing stream.
  void expect_driver_refused(const Thrown& thrown) const {
    expect_answer(thrown, Kind::kCuda, "(CUDA: cudaErrorStreamCaptureUnsupported");
    expect_answer(thrown, Kind::kTorchCuda, "(not issued; CUDA: the stream's capture is active)");
  }
  /// The end of an invalidated capture: the driver ended the real capture.
  void expect_driver_ended_invalidated(const Thrown& thrown) const {
    expect_answer(thrown, Kind::kCuda, "(CUDA: cudaErrorStreamCaptureInvalidated");
    expect_answer(thrown, Kind::kTorchCuda, "(LibTorch");
  }
  /// Capture on the legacy stream: CUDA, or LibTorch before CUDA, refused it too.
  void expect_driver_refused_legacy(const Thrown& thrown) const {
    expect_answer(thrown, Kind::kCuda, "(CUDA: cudaErrorStreamCaptureUnsupported");
    expect_answer(thrown, Kind::kTorchCuda, "(LibTorch: ");
    if (on_gpu()) {
      EXPECT_EQ(thrown.message.find("accepted it"), std::string::npos) << thrown.message;
    }
  }

  std::unique_ptr<Backend> backend_;
};

// The backend contract that the capture rules build on.

TEST_P(Conformance, AllocationIsZeroFilledAndUploadsRoundTrip) {
  const char* expected_name = kind() == Kind::kSim ? "sim" : kind() == Kind::kCuda ? "cuda" : "torch";
  EXPECT_EQ(backend_->name(), expected_name);
  EXPECT_FALSE(backend_->capturing());
  const Buffer a = backend_->allocate("a", 5);
  EXPECT_EQ(backend_->label(a), "a");
  EXPECT_EQ(read(a), Values(5, 0));
  const Values values = {1, -2, 3, kInt32Max, kInt32Min};
  backend_->upload(whole(a), values.data());
  EXPECT_EQ(read(a), values);
  EXPECT_EQ(read(range(a, 1, 3)), (Values{-2, 3}));
  const Buffer empty = backend_->allocate("empty", 0);
  EXPECT_EQ(read(empty), Values{});
  backend_->synchronize();
}

TEST_P(Conformance, EagerOpsRunImmediatelyWithWrappingArithmetic) {
  const Buffer a = buffer("a", {1, 2, 3, 4});
  const Buffer b = buffer("b", {10, 20, 30, 40});
  backend_->add(range(a, 1, 3), range(b, 0, 2));
  EXPECT_EQ(read(a), (Values{1, 12, 23, 4}));
  backend_->sub(whole(a), whole(b));
  EXPECT_EQ(read(a), (Values{-9, -8, -7, -36}));
  backend_->copy(range(b, 0, 2), range(b, 2, 4));
  EXPECT_EQ(read(b), (Values{30, 40, 30, 40}));
  backend_->fill(range(b, 1, 4), 7);
  EXPECT_EQ(read(b), (Values{30, 7, 7, 7}));
  // int32 overflow wraps, as on the GPU.
  const Buffer c = buffer("c", {kInt32Max, kInt32Min});
  const Buffer ones = buffer("ones", {1, 1});
  backend_->add(whole(c), whole(ones));
  EXPECT_EQ(read(c), (Values{kInt32Min, kInt32Min + 1}));
  backend_->sub(whole(c), whole(ones));
  backend_->sub(whole(c), whole(ones));
  EXPECT_EQ(read(c), (Values{kInt32Max - 1, kInt32Max}));
  // Overlapping slices at another offset: every source element is read before
  // any is written.
  const Buffer d = buffer("d", {1, 2, 3, 4, 5, 6, 7, 8});
  backend_->copy(range(d, 2, 8), range(d, 0, 6));
  EXPECT_EQ(read(d), (Values{1, 2, 1, 2, 3, 4, 5, 6}));
  backend_->add(range(d, 0, 6), range(d, 1, 7));
  EXPECT_EQ(read(d), (Values{3, 3, 3, 5, 7, 9, 5, 6}));
}

// Rule 1: a device op issued while capturing is recorded, not run; memory is
// unchanged by a capture. Every op kind is captured.
TEST_P(Conformance, OpsDuringCaptureLeaveMemoryUnchanged) {
  const Buffer a = buffer("a", {1, 2, 3, 4});
  const Buffer b = buffer("b", {10, 20, 30, 40});
  const Buffer seqs = buffer("seq_ids", {0, 1, 0, 1});
  backend_->begin_capture();
  EXPECT_TRUE(backend_->capturing());
  backend_->add(whole(a), whole(b));
  backend_->sub(range(b, 0, 2), range(a, 2, 4));
  backend_->copy(range(a, 0, 3), range(a, 1, 4));
  backend_->fill(range(b, 1, 3), -7);
  backend_->model_step(whole(b), whole(a), whole(a), whole(seqs), range(a, 0, 2));
  const Graph graph = backend_->end_capture();
  EXPECT_FALSE(backend_->capturing());
  EXPECT_EQ(read(a), (Values{1, 2, 3, 4}));
  EXPECT_EQ(read(b), (Values{10, 20, 30, 40}));
  EXPECT_EQ(read(seqs), (Values{0, 1, 0, 1}));
  // The replay runs the five ops in order.
  backend_->replay(graph);
  EXPECT_EQ(read(a), (Values{22, 33, 44, 44}));
  EXPECT_EQ(read(b), (Values{model_mix(22, 22, 22), model_mix(33, 33, 33), model_mix(44, 44, 22),
                             model_mix(44, 44, 33)}));
}

// Rule 2: host values are baked at capture; device data is read at replay.
TEST_P(Conformance, HostValuesAreBakedDeviceDataIsReadAtReplay) {
  const Buffer a = backend_->allocate("a", 3);
  const Buffer b = buffer("b", {1, 2, 3});
  const Buffer c = backend_->allocate("c", 3);
  std::int32_t host_value = 7;
  backend_->begin_capture();
  backend_->fill(whole(a), host_value);
  backend_->copy(whole(c), whole(b));
  const Graph graph = backend_->end_capture();
  host_value = 9;  // changing the host variable after capture changes nothing
  const Values later = {4, 5, 6};
  backend_->upload(whole(b), later.data());  // changing device data before replay is seen
  EXPECT_EQ(read(a), Values(3, 0));
  backend_->replay(graph);
  EXPECT_EQ(read(a), Values(3, 7));
  EXPECT_EQ(read(c), later);
}

// Rule 3: every replay re-runs every op on the same buffers; in-place updates
// accumulate (and wrap).
TEST_P(Conformance, ReplaysAccumulateInPlaceUpdates) {
  const Buffer a = buffer("a", {1, 2, 3, kInt32Max});
  const Buffer b = buffer("b", {10, 20, 30, 1});
  const Buffer kv = buffer("kv_lens", {10, 20, 30, 40});
  const Buffer offsets = buffer("offsets", {3, 3, 3});
  backend_->begin_capture();
  backend_->add(whole(a), whole(b));
  backend_->add(range(kv, 1, 4), whole(offsets));
  const Graph graph = backend_->end_capture();
  EXPECT_EQ(read(kv), (Values{10, 20, 30, 40}));
  backend_->replay(graph);
  EXPECT_EQ(read(a), (Values{11, 22, 33, kInt32Min}));
  EXPECT_EQ(read(kv), (Values{10, 23, 33, 43}));
  backend_->replay(graph);
  backend_->replay(graph);
  EXPECT_EQ(read(a), (Values{31, 62, 93, kInt32Min + 2}));
  EXPECT_EQ(read(b), (Values{10, 20, 30, 1}));
  EXPECT_EQ(read(kv), (Values{10, 29, 39, 49}));
}

// Rule 4: a download during capture is refused (900) and invalidates the
// capture: later launches fail (901), end_capture fails (901) with no graph,
// and the stream then captures again.
TEST_P(Conformance, DownloadDuringCaptureInvalidatesIt) {
  const Buffer a = buffer("a", {1, 2, 3});
  backend_->begin_capture();
  backend_->fill(whole(a), 5);
  Values host = {-1, -1, -1};
  const Thrown download = thrown_by([&] { backend_->download(whole(a), host.data()); });
  expect_error(download, BackendErrorKind::kCaptureUnsupported, refused_while_capturing("download"));
  expect_driver_refused(download);
  EXPECT_EQ(host, (Values{-1, -1, -1}));  // nothing was read
  EXPECT_TRUE(backend_->capturing());
  // CUDA keeps failing work on an invalidated capture until it is ended.
  expect_error(thrown_by([&] { backend_->fill(whole(a), 6); }),
               BackendErrorKind::kCaptureInvalidated, launch_on_invalidated("fill"));
  expect_error(thrown_by([&] { backend_->add(whole(a), whole(a)); }),
               BackendErrorKind::kCaptureInvalidated, launch_on_invalidated("add"));
  const Thrown end = thrown_by([&] { (void)backend_->end_capture(); });
  expect_error(end, BackendErrorKind::kCaptureInvalidated, kEndOfInvalidated);
  expect_driver_ended_invalidated(end);
  EXPECT_FALSE(backend_->capturing());
  std::printf("%s: %s\n%s: %s\n", kind_name(kind()).c_str(), download.message.c_str(),
              kind_name(kind()).c_str(), end.message.c_str());
  EXPECT_EQ(read(a), (Values{1, 2, 3}));
  // The stream captures again, and the new graph holds only its own op.
  backend_->begin_capture();
  backend_->fill(whole(a), 8);
  const Graph graph = backend_->end_capture();
  ASSERT_NE(backend_->recorded_ops(graph), nullptr);
  EXPECT_EQ(backend_->recorded_ops(graph)->size(), 1u);
  backend_->replay(graph);
  EXPECT_EQ(read(a), (Values{8, 8, 8}));
}

// Rule 4, the other synchronizing calls: upload, synchronize, allocate, free.
TEST_P(Conformance, UploadSynchronizeAllocateAndFreeDuringCaptureInvalidateIt) {
  const Buffer a = buffer("a", {1, 2});
  const Values values = {7, 8};
  const std::vector<std::pair<std::string, std::function<void()>>> illegal_calls = {
      {"upload", [&] { backend_->upload(whole(a), values.data()); }},
      {"synchronize", [&] { backend_->synchronize(); }},
      {"allocate", [&] { (void)backend_->allocate("b", 2); }},
      {"free", [&] { backend_->free(a); }},
  };
  for (const auto& [call, illegal_call] : illegal_calls) {
    SCOPED_TRACE(call + " during capture");
    backend_->begin_capture();
    backend_->fill(whole(a), 5);
    const Thrown refused = thrown_by(illegal_call);
    expect_error(refused, BackendErrorKind::kCaptureUnsupported, refused_while_capturing(call));
    expect_driver_refused(refused);
    EXPECT_TRUE(backend_->capturing());
    expect_error(thrown_by([&] { backend_->fill(whole(a), 6); }),
                 BackendErrorKind::kCaptureInvalidated, launch_on_invalidated("fill"));
    const Thrown end = thrown_by([&] { (void)backend_->end_capture(); });
    expect_error(end, BackendErrorKind::kCaptureInvalidated, kEndOfInvalidated);
    expect_driver_ended_invalidated(end);
    EXPECT_FALSE(backend_->capturing());
  }
  // Nothing was uploaded or freed and nothing captured ran: `a` is still live.
  EXPECT_EQ(read(a), (Values{1, 2}));
  backend_->synchronize();
  backend_->fill(whole(a), 4);
  EXPECT_EQ(read(a), (Values{4, 4}));
  backend_->begin_capture();
  backend_->add(whole(a), whole(a));
  backend_->replay(backend_->end_capture());
  EXPECT_EQ(read(a), (Values{8, 8}));
}

// Rule 4: begin while capturing and end without begin are illegal-state (401);
// the capture in progress stays valid.
TEST_P(Conformance, BeginWhileCapturingAndEndWithoutBeginAreIllegalState) {
  const Buffer a = buffer("a", {1, 2});
  expect_error(thrown_by([&] { (void)backend_->end_capture(); }), BackendErrorKind::kIllegalState,
               kEndWithoutBegin);
  EXPECT_FALSE(backend_->capturing());
  backend_->begin_capture();
  expect_error(thrown_by([&] { backend_->begin_capture(); }), BackendErrorKind::kIllegalState,
               kBeginWhileCapturing);
  EXPECT_TRUE(backend_->capturing());
  // The first capture is still valid.
  backend_->fill(whole(a), 3);
  const Graph graph = backend_->end_capture();
  EXPECT_EQ(read(a), (Values{1, 2}));
  backend_->replay(graph);
  EXPECT_EQ(read(a), (Values{3, 3}));
  expect_error(thrown_by([&] { (void)backend_->end_capture(); }), BackendErrorKind::kIllegalState,
               kEndWithoutBegin);
}

// Rule 4: a graph launch while capturing is refused (900) but, unlike a
// synchronizing call, does not invalidate the capture.
TEST_P(Conformance, ReplayWhileCapturingIsRefusedWithoutInvalidating) {
  const Buffer a = buffer("a", {1, 2});
  backend_->begin_capture();
  backend_->fill(whole(a), 4);
  const Graph first = backend_->end_capture();
  backend_->begin_capture();
  expect_error(thrown_by([&] { backend_->replay(first); }), BackendErrorKind::kCaptureUnsupported,
               kReplayWhileCapturing);
  EXPECT_TRUE(backend_->capturing());
  backend_->add(whole(a), whole(a));
  const Graph second = backend_->end_capture();
  EXPECT_EQ(read(a), (Values{1, 2}));
  backend_->replay(first);
  backend_->replay(second);
  EXPECT_EQ(read(a), (Values{8, 8}));
}

// Rule 4: capture on the legacy stream is refused (900); the backend works
// eagerly there.
TEST_P(Conformance, CaptureOnTheLegacyStreamIsRefused) {
  BackendOptions options;
  options.legacy_stream = true;
  const auto legacy = make(kind(), options);
  const Buffer a = make_buffer(*legacy, "a", {1, 2});
  legacy->add(whole(a), whole(a));
  EXPECT_EQ(capcheck::read(*legacy, whole(a)), (Values{2, 4}));
  const Thrown begin = thrown_by([&] { legacy->begin_capture(); });
  expect_error(begin, BackendErrorKind::kCaptureUnsupported, kLegacyStream);
  expect_driver_refused_legacy(begin);
  std::printf("%s: %s\n", kind_name(kind()).c_str(), begin.message.c_str());
  EXPECT_FALSE(legacy->capturing());
  legacy->fill(whole(a), 1);
  EXPECT_EQ(capcheck::read(*legacy, whole(a)), (Values{1, 1}));
  EXPECT_EQ(thrown_by([&] { legacy->begin_capture(); }).kind, BackendErrorKind::kCaptureUnsupported);
  EXPECT_FALSE(legacy->capturing());
  // The default (non-blocking) stream of the same kind captures.
  backend_->begin_capture();
  EXPECT_TRUE(backend_->capturing());
  (void)backend_->end_capture();
}

// Rule 5: a buffer freed, or freed and its slot reallocated, after capture is
// a dangling reference: replay reports it and runs nothing, not even the ops
// before the dangling one.
TEST_P(Conformance, FreedOrReallocatedBufferIsDanglingAtReplay) {
  const Buffer a = buffer("a", {1, 2, 3});
  const Buffer b = buffer("b", {10, 20, 30});
  backend_->begin_capture();
  backend_->fill(whole(a), 0);
  backend_->add(whole(a), whole(b));
  const Graph graph = backend_->end_capture();
  backend_->free(b);
  expect_error(thrown_by([&] { backend_->replay(graph); }), BackendErrorKind::kDanglingBuffer,
               dangling("add", "b"));
  // A new buffer in the freed slot is still not the captured one, and the
  // report names the freed buffer, not the one that reuses its slot.
  const Buffer reused = buffer("reused", {7, 7, 7});
  EXPECT_EQ(reused.slot, b.slot);
  EXPECT_NE(reused.generation, b.generation);
  expect_error(thrown_by([&] { backend_->replay(graph); }), BackendErrorKind::kDanglingBuffer,
               dangling("add", "b"));
  EXPECT_EQ(read(a), (Values{1, 2, 3}));
  EXPECT_EQ(read(reused), (Values{7, 7, 7}));
  // The stale handle is dangling eagerly too.
  expect_error(thrown_by([&] { backend_->fill(whole(b), 1); }), BackendErrorKind::kDanglingBuffer,
               dangling("fill", "b"));
  expect_error(thrown_by([&] { backend_->free(b); }), BackendErrorKind::kDanglingBuffer,
               dangling("free", "b"));
  EXPECT_EQ(read(reused), (Values{7, 7, 7}));
}

// A destroyed graph cannot replay (1), and destroying it twice is an error (1).
TEST_P(Conformance, DestroyedGraphCannotReplayAndCannotBeDestroyedTwice) {
  const Buffer a = buffer("a", {1});
  backend_->begin_capture();
  backend_->fill(whole(a), 2);
  const Graph graph = backend_->end_capture();
  backend_->destroy_graph(graph);
  EXPECT_EQ(backend_->recorded_ops(graph), nullptr);
  expect_error(thrown_by([&] { backend_->replay(graph); }), BackendErrorKind::kInvalidValue,
               not_a_live_graph("replay"));
  expect_error(thrown_by([&] { backend_->destroy_graph(graph); }), BackendErrorKind::kInvalidValue,
               not_a_live_graph("destroy_graph"));
  EXPECT_EQ(read(a), (Values{1}));
  // A graph this backend never made is not live either.
  expect_error(thrown_by([&] { backend_->replay(Graph{graph.id + 1000}); }),
               BackendErrorKind::kInvalidValue, not_a_live_graph("replay"));
  // An empty capture is a graph that replays as nothing.
  backend_->begin_capture();
  const Graph empty = backend_->end_capture();
  backend_->replay(empty);
  backend_->destroy_graph(empty);
  EXPECT_EQ(read(a), (Values{1}));
}

// destroy_graph() during a capture forgets the graph at once (a GPU backend
// releases it when the capture ends); the capture in progress is unaffected.
TEST_P(Conformance, GraphDestroyedDuringCaptureIsGoneAndTheCaptureStillWorks) {
  const Buffer a = buffer("a", {1, 2});
  backend_->begin_capture();
  backend_->fill(whole(a), 9);
  const Graph first = backend_->end_capture();
  backend_->begin_capture();
  backend_->destroy_graph(first);
  EXPECT_EQ(backend_->recorded_ops(first), nullptr);
  EXPECT_TRUE(backend_->capturing());
  backend_->add(whole(a), whole(a));
  const Graph second = backend_->end_capture();
  expect_error(thrown_by([&] { backend_->replay(first); }), BackendErrorKind::kInvalidValue,
               not_a_live_graph("replay"));
  backend_->replay(second);
  EXPECT_EQ(read(a), (Values{2, 4}));
}

// Out-of-bounds slices, mismatched lengths, negative counts and dead buffers
// are invalid-value (or dangling-buffer) errors that write nothing; refused
// at launch during capture, they leave the capture valid.
TEST_P(Conformance, OutOfBoundsSliceIsRejected) {
  const Buffer a = backend_->allocate("a", 4);
  const Buffer b = backend_->allocate("b", 3);
  expect_error(thrown_by([&] { backend_->fill(Slice{a, 3, 2}, 1); }),
               BackendErrorKind::kInvalidValue,
               "fill failed: invalid-value (1): destination slice [3:5] is outside buffer 'a' of "
               "4 elements");
  expect_error(thrown_by([&] { backend_->fill(Slice{a, -1, 1}, 1); }),
               BackendErrorKind::kInvalidValue,
               "fill failed: invalid-value (1): destination slice [-1:0] is outside buffer 'a' of "
               "4 elements");
  expect_error(thrown_by([&] { backend_->copy(range(a, 0, 3), range(b, 1, 4)); }),
               BackendErrorKind::kInvalidValue,
               "copy failed: invalid-value (1): source slice [1:4] is outside buffer 'b' of 3 "
               "elements");
  expect_error(thrown_by([&] { backend_->add(range(a, 0, 2), range(b, 0, 3)); }),
               BackendErrorKind::kInvalidValue,
               "add failed: invalid-value (1): source and destination lengths differ");
  const Values values = {1, 2};
  expect_error(thrown_by([&] { backend_->upload(Slice{b, 2, 2}, values.data()); }),
               BackendErrorKind::kInvalidValue,
               "upload failed: invalid-value (1): destination slice [2:4] is outside buffer 'b' of "
               "3 elements");
  Values host(2, -1);
  expect_error(thrown_by([&] { backend_->download(Slice{b, 2, 2}, host.data()); }),
               BackendErrorKind::kInvalidValue,
               "download failed: invalid-value (1): source slice [2:4] is outside buffer 'b' of 3 "
               "elements");
  EXPECT_EQ(host, (Values{-1, -1}));
  expect_error(thrown_by([&] { (void)backend_->allocate("c", -1); }),
               BackendErrorKind::kInvalidValue,
               "allocate failed: invalid-value (1): negative element count");
  EXPECT_EQ(read(a), Values(4, 0));
  EXPECT_EQ(read(b), Values(3, 0));
  // During capture: refused at the launch; the capture stays valid.
  backend_->begin_capture();
  expect_error(thrown_by([&] { backend_->fill(Slice{a, 3, 2}, 1); }),
               BackendErrorKind::kInvalidValue,
               "fill failed: invalid-value (1): destination slice [3:5] is outside buffer 'a' of "
               "4 elements");
  backend_->fill(range(a, 0, 1), 5);
  const Graph graph = backend_->end_capture();
  ASSERT_NE(backend_->recorded_ops(graph), nullptr);
  EXPECT_EQ(backend_->recorded_ops(graph)->size(), 1u);
  backend_->replay(graph);
  EXPECT_EQ(read(a), (Values{5, 0, 0, 0}));
}

// model_step gathers each token's kv_len by its sequence id; a sequence id
// outside kv_lens writes nothing and is reported (at the launch, or on a GPU at
// the next synchronizing call), never read out of bounds.
TEST_P(Conformance, ModelStepGathersKvLensPerSequence) {
  const Buffer ids = buffer("ids", {7, -8, 9});
  const Buffer pos = buffer("pos", {0, 1, -1});
  const Buffer seq = buffer("seq", {0, 1, 1});
  const Buffer kv = buffer("kv", {100, 200});
  const Buffer out = backend_->allocate("out", 3);
  backend_->model_step(whole(out), whole(ids), whole(pos), whole(seq), whole(kv));
  EXPECT_EQ(read(out), (Values{model_mix(7, 0, 100), model_mix(-8, 1, 200), model_mix(9, -1, 200)}));
  const Values before = read(out);
  const Values bad = {0, 2, 1};
  backend_->upload(whole(seq), bad.data());
  const Thrown thrown = thrown_by([&] {
    backend_->model_step(whole(out), whole(ids), whole(pos), whole(seq), whole(kv));
    backend_->synchronize();
  });
  EXPECT_EQ(thrown.kind, BackendErrorKind::kInvalidValue);
  EXPECT_EQ(thrown.message, "model_step failed: invalid-value (1): seq_ids[1] = 2 is outside kv_lens of 2");
  EXPECT_EQ(read(out), before);  // a bad sequence id writes nothing
  backend_->synchronize();       // reported once
  expect_error(thrown_by([&] {
                 backend_->model_step(whole(out), whole(ids), range(pos, 0, 2), whole(seq),
                                      whole(kv));
               }),
               BackendErrorKind::kInvalidValue,
               "model_step failed: invalid-value (1): per-token slices differ in length");
}

// An output that overlaps an input of model_step is refused (a data race
// between threads on a GPU); disjoint slices of one buffer are fine.
TEST_P(Conformance, ModelStepOutputMustNotOverlapItsInputs) {
  const std::string overlap =
      "model_step failed: invalid-value (1): the output overlaps an input (a data race on a GPU)";
  const Buffer x = backend_->allocate("x", 8);
  const Buffer seq = backend_->allocate("seq", 4);
  const Buffer kv = buffer("kv", {1});
  expect_error(thrown_by([&] {
                 backend_->model_step(range(x, 0, 4), range(x, 2, 6), range(x, 4, 8), whole(seq),
                                      whole(kv));
               }),
               BackendErrorKind::kInvalidValue, overlap);
  expect_error(thrown_by([&] {
                 backend_->model_step(range(x, 0, 2), range(x, 2, 4), range(x, 2, 4),
                                      range(seq, 0, 2), range(x, 1, 2));
               }),
               BackendErrorKind::kInvalidValue, overlap);
  backend_->begin_capture();
  expect_error(thrown_by([&] {
                 backend_->model_step(whole(seq), range(x, 0, 4), range(x, 4, 8), whole(seq),
                                      whole(kv));
               }),
               BackendErrorKind::kInvalidValue, overlap);
  (void)backend_->end_capture();
  const Buffer out = backend_->allocate("out", 2);
  EXPECT_NO_THROW(backend_->model_step(whole(out), range(x, 0, 2), range(x, 2, 4),
                                       range(seq, 0, 2), range(x, 0, 1)));
  EXPECT_EQ(read(out), (Values{model_mix(0, 0, 0), model_mix(0, 0, 0)}));
}

// A captured model_step reads its sequence ids at replay: out-of-range ids
// there write nothing and report the sim's message; fixed ids replay again.
TEST_P(Conformance, CapturedModelStepWithOutOfRangeSeqIdWritesNothingAtReplay) {
  const Buffer ids = buffer("ids", {1, 2, 3});
  const Buffer positions = buffer("positions", {0, 1, 2});
  const Buffer seq_ids = buffer("seq_ids", {0, 1, 1});
  const Buffer kv_lens = buffer("kv_lens", {5, 6});
  const Buffer out = buffer("out", {-1, -1, -1});
  backend_->begin_capture();
  backend_->model_step(whole(out), whole(ids), whole(positions), whole(seq_ids), whole(kv_lens));
  const Graph graph = backend_->end_capture();
  const Values bad = {0, 2, -1};
  backend_->upload(whole(seq_ids), bad.data());
  // Reported by the replay, or on the raw GPU by the next synchronizing call.
  const Thrown thrown = thrown_by([&] {
    backend_->replay(graph);
    backend_->synchronize();
  });
  EXPECT_EQ(thrown.kind, BackendErrorKind::kInvalidValue);
  EXPECT_EQ(thrown.message,
            "model_step failed: invalid-value (1): seq_ids[1] = 2 is outside kv_lens of 2");
  EXPECT_EQ(read(out), (Values{-1, -1, -1}));
  const Values good = {1, 0, 1};
  backend_->upload(whole(seq_ids), good.data());
  backend_->replay(graph);  // the error was reported once
  EXPECT_EQ(read(out), (Values{model_mix(1, 0, 6), model_mix(2, 1, 5), model_mix(3, 2, 6)}));
  backend_->synchronize();
}

// Backend::recorded_ops: a live graph's ops, oldest first, as captured (slices
// and host values), each with the phase annotate() named when it was
// launched; nothing eager, nothing of an invalidated capture; null once the
// graph is destroyed.
TEST_P(Conformance, RecordedOpsAreTheCapturedOpsInOrderWithTheirPhases) {
  const Buffer a = buffer("a", {1, 2, 3, 4});
  const Buffer b = buffer("b", {5, 6, 7, 8});
  const Buffer seq = buffer("seq", {0, 0, 0, 0});
  backend_->annotate("eager");
  backend_->add(whole(a), whole(b));  // eager: in no graph
  backend_->annotate("warmup 1 preprocess");
  backend_->begin_capture();
  backend_->add(range(a, 1, 3), range(b, 0, 2));
  backend_->annotate("model");
  backend_->fill(range(b, 2, 4), 42);
  backend_->model_step(whole(b), whole(a), whole(a), whole(seq), range(a, 0, 1));
  backend_->annotate("postprocess");
  backend_->sub(whole(a), whole(b));
  const Graph graph = backend_->end_capture();

  const std::vector<RecordedOp>* ops = backend_->recorded_ops(graph);
  ASSERT_NE(ops, nullptr);
  ASSERT_EQ(ops->size(), 4u);
  const auto expect_slice = [](const Slice& actual, const Slice& expected, const char* what) {
    EXPECT_TRUE(actual.buffer == expected.buffer) << what;
    EXPECT_EQ(actual.offset, expected.offset) << what;
    EXPECT_EQ(actual.count, expected.count) << what;
  };
  EXPECT_EQ((*ops)[0].op.kind, OpKind::kAdd);
  EXPECT_STREQ((*ops)[0].phase, "warmup 1 preprocess");
  expect_slice((*ops)[0].op.dst, range(a, 1, 3), "add dst");
  expect_slice((*ops)[0].op.src, range(b, 0, 2), "add src");
  EXPECT_EQ((*ops)[1].op.kind, OpKind::kFill);
  EXPECT_STREQ((*ops)[1].phase, "model");
  expect_slice((*ops)[1].op.dst, range(b, 2, 4), "fill dst");
  EXPECT_EQ((*ops)[1].op.value, 42);
  EXPECT_EQ((*ops)[2].op.kind, OpKind::kModelStep);
  EXPECT_STREQ((*ops)[2].phase, "model");
  expect_slice((*ops)[2].op.dst, whole(b), "model_step out");
  expect_slice((*ops)[2].op.src, whole(a), "model_step input_ids");
  expect_slice((*ops)[2].op.positions, whole(a), "model_step position_ids");
  expect_slice((*ops)[2].op.seq_ids, whole(seq), "model_step seq_ids");
  expect_slice((*ops)[2].op.kv_lens, range(a, 0, 1), "model_step kv_lens");
  EXPECT_EQ((*ops)[3].op.kind, OpKind::kSub);
  EXPECT_STREQ((*ops)[3].phase, "postprocess");

  // The phase holds for later captures; an invalidated capture adds no graph.
  backend_->begin_capture();
  backend_->copy(range(a, 0, 1), range(b, 0, 1));
  (void)thrown_by([&] { backend_->synchronize(); });
  (void)thrown_by([&] { (void)backend_->end_capture(); });
  backend_->begin_capture();
  backend_->copy(range(a, 0, 2), range(b, 0, 2));
  const Graph second = backend_->end_capture();
  const std::vector<RecordedOp>* second_ops = backend_->recorded_ops(second);
  ASSERT_NE(second_ops, nullptr);
  ASSERT_EQ(second_ops->size(), 1u);
  EXPECT_EQ((*second_ops)[0].op.kind, OpKind::kCopy);
  EXPECT_EQ((*second_ops)[0].op.dst.count, 2);
  EXPECT_STREQ((*second_ops)[0].phase, "postprocess");
  ASSERT_EQ(backend_->recorded_ops(graph), ops);  // replays and other graphs leave it alone
  EXPECT_EQ(ops->size(), 4u);

  backend_->destroy_graph(graph);
  EXPECT_EQ(backend_->recorded_ops(graph), nullptr);
  EXPECT_NE(backend_->recorded_ops(second), nullptr);
  EXPECT_EQ(backend_->recorded_ops(Graph{}), nullptr);
  backend_->destroy_graph(second);
  EXPECT_EQ(backend_->recorded_ops(second), nullptr);
}

// BackendError::file() and line() are where the backend called into the
// capture model (throw_backend_error records its caller's location), not
// errors.cc or the model's own file.
TEST_P(Conformance, ErrorsPointAtTheBackendThatRaisedThem) {
  const char* backend_file = kind() == Kind::kTorchCuda ? "torch_cuda_backend.cc"
                             : kind() == Kind::kCuda    ? "cuda_backend.cu"
                                                        : "recording_backend.cc";
  const Buffer a = buffer("a", {1, 2});
  BackendOptions options;
  options.legacy_stream = true;
  const auto legacy = make(kind(), options);
  std::vector<std::pair<std::string, Thrown>> errors;
  errors.emplace_back("end without begin", thrown_by([&] { (void)backend_->end_capture(); }));
  errors.emplace_back("out-of-bounds fill", thrown_by([&] { backend_->fill(Slice{a, 1, 2}, 0); }));
  errors.emplace_back("replay of no graph", thrown_by([&] { backend_->replay(Graph{}); }));
  errors.emplace_back("legacy begin", thrown_by([&] { legacy->begin_capture(); }));
  backend_->begin_capture();
  errors.emplace_back("begin while capturing", thrown_by([&] { backend_->begin_capture(); }));
  errors.emplace_back("download while capturing",
                      thrown_by([&] { (void)capcheck::read(*backend_, whole(a)); }));
  errors.emplace_back("launch on invalidated", thrown_by([&] { backend_->fill(whole(a), 1); }));
  errors.emplace_back("end of invalidated", thrown_by([&] { (void)backend_->end_capture(); }));
  for (const auto& [what, thrown] : errors) {
    SCOPED_TRACE(what + ": " + thrown.message);
    ASSERT_TRUE(thrown.kind.has_value());
    EXPECT_FALSE(ends_with(thrown.file, "errors.cc")) << thrown.file;
    EXPECT_FALSE(ends_with(thrown.file, "capture_model.cc")) << thrown.file;
    EXPECT_FALSE(ends_with(thrown.file, "buffer_table.cc")) << thrown.file;
    EXPECT_TRUE(ends_with(thrown.file, backend_file)) << thrown.file;
    EXPECT_GT(thrown.line, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, Conformance, ::testing::ValuesIn(compiled_kinds()),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           return kind_name(info.param);
                         });

}  // namespace
}  // namespace capcheck
