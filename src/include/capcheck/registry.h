// The backend registry: which backends this build has, and construction by
// name. The torch backend is a module loaded on first use (Note [LibTorch on
// first use] in backend/registry.cc): listing backends never loads LibTorch.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/backend.h"

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

/// The names of the available backends other than `name`, in registry order.
std::vector<std::string> other_available_backends(std::string_view name);

}  // namespace capcheck
