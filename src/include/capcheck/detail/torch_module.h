// The entry point of the LibTorch backend module (Note [LibTorch on first use]
// in backend/registry.cc): the registry dlopen()s the module and reaches the
// backend only through this table, so a process that never asks for `torch`
// never loads LibTorch.
#pragma once

#include <memory>
#include <string>

#include "capcheck/backend.h"
#include "capcheck/instance.h"
#include "capcheck/torch_backend.h"

namespace capcheck::detail {

/// Bumped whenever TorchModule changes; the registry refuses another value.
inline constexpr int kTorchModuleAbi = 2;

struct TorchModule {
  int abi = kTorchModuleAbi;
  std::unique_ptr<Backend> (*make)(BackendOptions options, TorchDevice device) = nullptr;
  bool (*cuda_available)(std::string* why) = nullptr;
  const char* (*description)() = nullptr;
  /// The built-in LibTorch subjects (registry.h: make_library_subjects).
  std::unique_ptr<Subjects> (*make_subjects)(const std::string& subject,
                                             const std::string& device) = nullptr;
};

}  // namespace capcheck::detail

/// The symbol the registry looks up in the module.
#define CAPCHECK_TORCH_MODULE_SYMBOL "capcheck_torch_module"
extern "C" const capcheck::detail::TorchModule* capcheck_torch_module();
