// The backend registry: which backends this build has, and construction by
// name. The torch backend is a module loaded on first use (Note [LibTorch on
// first use] in backend/registry.cc): listing backends never loads LibTorch.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/instance.h"

namespace capcheck {

struct BackendInfo {
  std::string name;
  /// Compiled into this build (for torch: its module is present).
  bool built = false;
  /// Usable on this machine now, as far as is known without loading a module
  /// (a GPU backend needs a device).
  bool available = false;
  /// What it runs on, or why it is not available.
  std::string detail;
};

/// Every backend capcheck knows, built or not. Loads no module.
std::vector<BackendInfo> list_backends();

/// A new backend. Throws UsageError for an unknown name, and BackendError
/// (kUnavailable) for a known backend this build or machine cannot run (for
/// torch: its module cannot be found or loaded; the message says where it looked).
std::unique_ptr<Backend> make_backend(std::string_view name, BackendOptions options = {});

/// The subjects capcheck has built in: "trtllm" (op-level, on any backend),
/// and, when LibTorch was found, "trtllm-torch" and "trtllm-torch-mrope" (the
/// TensorRT-LLM runner in LibTorch, on backend "emulator" or "cuda").
std::vector<std::string> builtin_subjects();
/// True for a LibTorch subject (it runs on "emulator" or "cuda").
bool is_library_subject(std::string_view subject);

/// The Subjects of a built-in LibTorch subject on `device` ("emulator" or
/// "cuda"). Loads the torch module; UsageError for an unknown subject or
/// device, BackendError (kUnavailable) when the module or a GPU is missing.
std::unique_ptr<Subjects> make_library_subjects(std::string_view subject, std::string_view device);

/// The names of the available backends other than `name`, in registry order.
std::vector<std::string> other_available_backends(std::string_view name);

}  // namespace capcheck
