// The backend registry: which backends this build has, and construction by name.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/backend.h"
#include "capcheck/harness.h"

namespace capcheck {

struct BackendInfo {
  std::string name;
  /// Compiled into this build.
  bool built = false;
  /// Usable on this machine now (a GPU backend needs a device).
  bool available = false;
  /// What it runs on, or why it is not available.
  std::string detail;
};

/// Every backend capcheck knows, built or not.
std::vector<BackendInfo> list_backends();

/// A new backend. Throws UsageError for an unknown name, and BackendError
/// (kUnavailable) for a known backend this build or machine cannot run.
std::unique_ptr<Backend> make_backend(std::string_view name, BackendOptions options = {});

/// Adds every other backend available here as a peer of `harness` (what
/// backends_agree compares with); returns their names.
std::vector<std::string> add_available_peers(Harness& harness);

}  // namespace capcheck
