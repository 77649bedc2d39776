// capcheck list: backends (without loading any module), protocols, mutants, properties.
#include <fmt/core.h>

#include <iostream>

#include "capcheck/registry.h"
#include "commands.h"

namespace capcheck::cli {

int list_command() {
  std::cout << "subjects (--subject):\n";
  for (const auto& subject : builtin_subjects()) {
    const char* what = subject == "trtllm"
                           ? "TensorRT-LLM's capture path as op-level device ops (backends sim, torch, cuda)"
                       : subject == "trtllm-torch"
                           ? "the same runner in LibTorch (backends emulator, cuda; docs/torch-subjects.md)"
                           : "the LibTorch runner with mrope position ids [3, 1, N] (backends emulator, cuda)";
    std::cout << fmt::format("  {:<20} {}\n", subject, what);
  }
  std::cout << "backends:\n";
  for (const auto& b : list_backends()) {
    std::cout << fmt::format("  {:<8} {:<13} {}\n", b.name,
                             b.available ? "available" : b.built ? "unavailable" : "not built",
                             b.detail);
  }
  std::cout << "protocols:\n";
  for (int i = 0; i < kProtocolCount; ++i) {
    std::cout << "  " << protocol_name(static_cast<Protocol>(i)) << '\n';
  }
  std::cout << "mutants:\n";
  for (int i = 0; i < kMutantCount; ++i) {
    std::cout << "  " << mutant_name(static_cast<Mutant>(i)) << '\n';
  }
  std::cout << "properties:\n";
  for (const auto& p : all_properties()) {
    std::cout << fmt::format("  {:<38} {}\n", p.name, p.claim);
  }
  return 0;
}

}  // namespace capcheck::cli
