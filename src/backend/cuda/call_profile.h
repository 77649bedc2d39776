// Host-side profile of the cuda backend's calls (cuda_backend_set_profiling):
// a count and host seconds per kind of call.
#pragma once

#include <array>

namespace capcheck::cuda_detail {

/// The backend calls profiled.
enum class Call : int {
  kAllocate,
  kFree,
  kUpload,
  kDownload,
  kDownloadCached,
  kLaunch,
  kFlush,
  kBeginCapture,
  kEndCapture,
  kReplay,
  kDestroyGraph,
  kSynchronize,
  kCount,
};

constexpr std::array<const char*, static_cast<int>(Call::kCount)> kCallNames = {
    "allocate",      "free",          "upload",      "download", "download (cached)",
    "launch",        "flush (batch)", "begin_capture", "end_capture", "replay",
    "destroy_graph", "synchronize"};

}  // namespace capcheck::cuda_detail
