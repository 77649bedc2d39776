// capcheck list: backends (without loading any module), protocols, mutants, properties.
#include <fmt/core.h>

#include <iostream>

#include "capcheck/registry.h"
#include "capcheck/subject_registry.h"
#include "commands.h"

namespace capcheck::cli {

int list_command(const std::vector<std::string>& plugins) {
  load_plugins_from_env();
  for (const std::string& plugin : plugins) load_plugin(plugin);
  std::cout << "subjects (--subject; options: --option NAME=VALUE):\n";
  for (const SubjectEntry* subject : registered_subjects()) {
    std::cout << fmt::format("  {:<20} {}\n", subject->name, subject->description);
    std::string devices;
    for (const auto& d : subject->devices) devices += (devices.empty() ? "" : ", ") + d;
    std::cout << fmt::format("  {:<20}   devices (--backend): {}\n", "", devices);
    if (subject->fields != kAllScenarioFields) {
      std::cout << fmt::format("  {:<20}   reads: {}\n", "", scenario_field_names(subject->fields));
    }
    if (!subject->unimplemented_mutants.empty()) {
      std::string missing;
      for (Mutant m : subject->unimplemented_mutants) {
        missing += (missing.empty() ? "" : ", ") + std::string(mutant_name(m));
      }
      std::cout << fmt::format("  {:<20}   mutants not implemented: {}\n", "", missing);
    }
    if (subject->generator) std::cout << fmt::format("  {:<20}   generator: its own\n", "");
    if (!subject->plugin.empty()) std::cout << fmt::format("  {:<20}   plugin: {}\n", "", subject->plugin);
    for (const SubjectOption& option : subject->options) {
      std::string values;
      for (const auto& v : option.values) values += (values.empty() ? "" : "|") + v;
      std::cout << fmt::format("  {:<20}   --option {}={} (default {}): {}\n", "", option.name,
                               values.empty() ? "VALUE" : values, option.default_value, option.help);
    }
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
