#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "capcheck/harness.h"
#include "capcheck/errors.h"
#include "capcheck/registry.h"
#include "commands.h"

namespace capcheck::cli {

bool ci_mode() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

std::vector<const PropertyInfo*> select_properties(const std::vector<std::string>& names) {
  std::vector<const PropertyInfo*> selected;
  if (names.empty()) {
    for (const auto& p : all_properties()) {
      if (!p.canary) selected.push_back(&p);
    }
    return selected;
  }
  for (const auto& name : names) selected.push_back(&find_property(name));
  return selected;
}

// backends_agree compares the chosen backend with every other available one.
// When it was not asked for by name and there is no other backend, it is
// dropped with a note instead of failing the run.
void add_peers(Harness& harness, const std::string& backend,
               std::vector<const PropertyInfo*>& properties, bool named) {
  const auto agree = std::find_if(properties.begin(), properties.end(),
                                  [](const PropertyInfo* p) { return p->name == "backends_agree"; });
  if (agree == properties.end()) return;
  const std::vector<std::string> peers = add_available_peers(harness);
  if (!peers.empty()) {
    std::string list;
    for (const auto& p : peers) list += (list.empty() ? "" : ", ") + p;
    std::cout << "backends_agree compares " << backend << " with: " << list << '\n';
  } else if (!named) {
    std::cout << "backends_agree skipped: no backend other than " << backend
              << " is available in this build/machine\n";
    properties.erase(agree);
  }
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", std::gmtime(&now));
  return text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read scenario file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

CLI::Validator one_of(std::vector<std::string> allowed) {
  return CLI::Validator(
      [allowed](std::string& value) -> std::string {
        for (const auto& a : allowed) {
          if (value == a) return "";
        }
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return "must be one of " + list + " (got '" + value + "')";
      },
      "");
}

CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!value.empty() && value.size() <= 20 &&
            value.find_first_not_of("0123456789") == std::string::npos) {
          return "";
        }
        return "must be an integer from 0 to 18446744073709551615 (got '" + value + "')";
      },
      "");
}

void add_common(CLI::App* command, CommonOptions& common) {
  command->add_option("--backend,-b", common.backend, "backend: sim, torch or cuda (see `list`)")
      ->default_val("sim");
  command->add_option("--property,-p", common.properties,
                      "property to run (repeatable; default: every non-canary property)");
}

}  // namespace capcheck::cli
