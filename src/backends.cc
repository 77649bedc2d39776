#include "capcheck/backends.h"

#include "capcheck/errors.h"
#include "capcheck/sim_backend.h"
#if defined(CAPCHECK_HAVE_TORCH)
#include "capcheck/torch_backend.h"
#endif
#if defined(CAPCHECK_HAVE_CUDA)
#include "capcheck/cuda_backend.h"
#endif

namespace capcheck {

std::vector<BackendInfo> list_backends() {
  std::vector<BackendInfo> backends;
  backends.push_back({"sim", true, true, "host simulator (Eigen) with recorded CUDA-graph capture"});
#if defined(CAPCHECK_HAVE_TORCH)
  backends.push_back({"torch", true, true, torch_backend_description()});
#else
  backends.push_back({"torch", false, false, "not built: LibTorch was not found at configure time"});
#endif
#if defined(CAPCHECK_HAVE_CUDA)
  {
    std::string why;
    const bool available = cuda_device_available(&why);
    backends.push_back({"cuda", true, available, available ? cuda_backend_description() : why});
  }
#else
  backends.push_back({"cuda", false, false, "not built: configure with -DCAPCHECK_ENABLE_CUDA=ON"});
#endif
  return backends;
}

std::unique_ptr<Backend> make_backend(std::string_view name, BackendOptions options) {
  if (name == "sim") return make_sim_backend(options);
#if defined(CAPCHECK_HAVE_TORCH)
  if (name == "torch") return make_torch_backend(options);
#endif
#if defined(CAPCHECK_HAVE_CUDA)
  if (name == "cuda") return make_cuda_backend(options);
#endif
  for (const auto& info : list_backends()) {
    if (info.name == name) {
      throw BackendError(BackendErrorKind::kUnavailable, "make_backend",
                         "backend '" + std::string(name) + "' is " + info.detail);
    }
  }
  throw UsageError("unknown backend '" + std::string(name) + "'; known: sim, torch, cuda");
}

std::vector<std::string> add_available_peers(Harness& harness) {
  const std::string self(harness.backend().name());
  std::vector<std::string> peers;
  for (const auto& info : list_backends()) {
    if (!info.available || info.name == self) continue;
    harness.add_peer(make_backend(info.name));
    peers.push_back(info.name);
  }
  return peers;
}

}  // namespace capcheck
