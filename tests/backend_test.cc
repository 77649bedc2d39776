// The backend registry and the model step's mix. The capture rules of
// docs/capture-rules.md are pinned on every backend by tests/backend_conformance_test.cc.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/registry.h"
#include "capcheck/errors.h"
#include "capcheck/detail/model.h"

namespace capcheck {
namespace {

TEST(ModelMix, EveryInputChangesTheOutput) {
  const std::int32_t base = model_mix(1, 2, 3);
  EXPECT_NE(base, model_mix(0, 2, 3));
  EXPECT_NE(base, model_mix(1, 1, 3));
  EXPECT_NE(base, model_mix(1, 2, 2));
}

TEST(Registry, UnknownBackendIsAUsageError) {
  EXPECT_THROW(make_backend("tpu"), UsageError);
}

// Every available backend is made by name (torch through its module, Note
// [LibTorch on first use]), and the options reach it: capture on the legacy
// stream is refused (900).
TEST(Registry, EveryAvailableBackendIsMadeByName) {
  int made = 0;
  for (const auto& info : list_backends()) {
    if (!info.available) continue;
    SCOPED_TRACE(info.name);
    const auto backend = make_backend(info.name);
    EXPECT_EQ(backend->name(), info.name);
    const Buffer buffer = backend->allocate("b", 2);
    backend->fill(whole(buffer), 3);
    EXPECT_EQ(read(*backend, whole(buffer)), (std::vector<std::int32_t>{3, 3}));
    BackendOptions options;
    options.legacy_stream = true;
    const auto legacy = make_backend(info.name, options);
    try {
      legacy->begin_capture();
      ADD_FAILURE() << "capture on the legacy stream was accepted";
    } catch (const BackendError& error) {
      EXPECT_EQ(error.kind(), BackendErrorKind::kCaptureUnsupported);
    }
    ++made;
  }
  EXPECT_GT(made, 0);  // sim at least
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
