// Note [LibTorch on first use]: LibTorch takes most of half a second to load,
// and most runs never touch it. So the torch backend is a shared module
// (libcapcheck_torch.so) that only make_backend("torch") loads, with dlopen.
// It is looked for, in order: at $CAPCHECK_TORCH_MODULE; beside the binary or
// library that holds this registry and in ../lib from there (an installed
// tree: bin/capcheck, lib/libcapcheck_torch.so); at the install path this
// build was configured with; and in this build tree. list_backends() only
// checks that the file is there: it never loads it.
#include "capcheck/registry.h"

#include <dlfcn.h>
#include <cstdlib>
#include <sys/stat.h>

#include <mutex>

#include "capcheck/errors.h"
#include "capcheck/sim_backend.h"
#if defined(CAPCHECK_HAVE_TORCH)
#include "capcheck/detail/torch_module.h"
#endif
#if defined(CAPCHECK_HAVE_CUDA)
#include "capcheck/cuda_backend.h"
#endif

namespace capcheck {

namespace {

#if defined(CAPCHECK_HAVE_TORCH)

bool is_file(const std::string& path) {
  struct stat info {};
  return !path.empty() && ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

// The directory of the binary or library that holds this code.
std::string own_directory() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&own_directory), &info) == 0 || info.dli_fname == nullptr) {
    return "";
  }
  const std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Every place the module is looked for, in order (Note [LibTorch on first use]).
std::vector<std::string> torch_module_candidates() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("CAPCHECK_TORCH_MODULE"); env != nullptr && *env != '\0') {
    candidates.push_back(env);
    return candidates;  // an explicit choice is the only one tried
  }
  const std::string own = own_directory();
  if (!own.empty()) {
    candidates.push_back(own + "/" CAPCHECK_TORCH_MODULE_NAME);
    candidates.push_back(own + "/../lib/" CAPCHECK_TORCH_MODULE_NAME);
  }
  candidates.push_back(CAPCHECK_TORCH_MODULE_INSTALL_PATH);
  candidates.push_back(CAPCHECK_TORCH_MODULE_BUILD_PATH);
  return candidates;
}

std::string first_present_module() {
  for (const std::string& path : torch_module_candidates()) {
    if (is_file(path)) return path;
  }
  return "";
}

std::string looked_in() {
  std::string text;
  for (const std::string& path : torch_module_candidates()) text += (text.empty() ? "" : ", ") + path;
  return text;
}

// Loads the module once per process; throws kUnavailable with the reason.
const detail::TorchModule& torch_module() {
  static std::once_flag once;
  static const detail::TorchModule* module = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    const std::string path = first_present_module();
    if (path.empty()) {
      failure = "its module " CAPCHECK_TORCH_MODULE_NAME " was not found (looked in: " +
                looked_in() + "; set CAPCHECK_TORCH_MODULE to its path)";
      return;
    }
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* error = ::dlerror();
      failure = "its module " + path + " could not be loaded: " + (error ? error : "unknown error");
      return;
    }
    using Entry = const detail::TorchModule* (*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(handle, CAPCHECK_TORCH_MODULE_SYMBOL));
    if (entry == nullptr) {
      failure = "its module " + path + " has no " CAPCHECK_TORCH_MODULE_SYMBOL " entry point";
      return;
    }
    const detail::TorchModule* loaded = entry();
    if (loaded == nullptr || loaded->abi != detail::kTorchModuleAbi) {
      failure = "its module " + path + " was built for another version of capcheck";
      return;
    }
    module = loaded;  // the handle stays open for the process's life
  });
  if (module == nullptr) {
    throw_backend_error(BackendErrorKind::kUnavailable, "make_backend", "backend 'torch': " + failure);
  }
  return *module;
}

#endif  // CAPCHECK_HAVE_TORCH

}  // namespace

std::vector<BackendInfo> list_backends() {
  std::vector<BackendInfo> backends;
  backends.push_back({"sim", true, true, "host simulator (Eigen) with recorded CUDA-graph capture"});
#if defined(CAPCHECK_HAVE_TORCH)
  {
    const std::string path = first_present_module();
    if (path.empty()) {
      backends.push_back({"torch", false, false,
                          "module " CAPCHECK_TORCH_MODULE_NAME " not found (looked in: " +
                              looked_in() + ")"});
    } else {
      backends.push_back({"torch", true, true,
                          std::string(CAPCHECK_TORCH_DESCRIPTION) + ", loaded on first use from " + path});
    }
  }
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
  if (name == "torch") return torch_module().make(options, TorchDevice::kAuto);
#endif
#if defined(CAPCHECK_HAVE_CUDA)
  if (name == "cuda") return make_cuda_backend(options);
#endif
  for (const auto& info : list_backends()) {
    if (info.name == name) {
      throw_backend_error(BackendErrorKind::kUnavailable, "make_backend",
                          "backend '" + std::string(name) + "' is " + info.detail);
    }
  }
  throw UsageError("unknown backend " + quote_input(name) + "; known: sim, torch, cuda");
}

std::vector<std::string> builtin_subjects() {
#if defined(CAPCHECK_HAVE_TORCH)
  return {"trtllm", "trtllm-torch", "trtllm-torch-mrope"};
#else
  return {"trtllm"};
#endif
}

bool is_library_subject(std::string_view subject) {
  return subject == "trtllm-torch" || subject == "trtllm-torch-mrope";
}

std::unique_ptr<Subjects> make_library_subjects(std::string_view subject, std::string_view device) {
  if (!is_library_subject(subject)) {
    throw UsageError("unknown LibTorch subject " + quote_input(subject) +
                     "; known: trtllm-torch, trtllm-torch-mrope");
  }
#if defined(CAPCHECK_HAVE_TORCH)
  return torch_module().make_subjects(std::string(subject), std::string(device));
#else
  (void)device;
  throw_backend_error(BackendErrorKind::kUnavailable, "make_library_subjects",
                      "subject '" + std::string(subject) +
                          "' needs LibTorch, which was not found at configure time");
#endif
}

std::vector<std::string> other_available_backends(std::string_view name) {
  std::vector<std::string> names;
  for (const auto& info : list_backends()) {
    if (info.available && info.name != name) names.push_back(info.name);
  }
  return names;
}

}  // namespace capcheck
