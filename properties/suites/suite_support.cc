#include "suite_support.h"

#include <map>
#include <memory>

namespace capcheck::suites {

Harness& harness(const std::string& backend) {
  static std::map<std::string, std::unique_ptr<Harness>> harnesses;
  auto& slot = harnesses[backend];
  if (!slot) {
    slot = std::make_unique<Harness>(make_backend(backend));
    add_available_peers(*slot);  // for backends_agree
  }
  return *slot;
}

void require(const char* property, const Scenario& scenario, const std::string& backend) {
  const Verdict verdict = check_property(find_property(property), harness(backend), scenario);
  if (verdict.passed) return;
  std::string reproduce = "capcheck reproduce " + encode_token(scenario);
  if (backend != "sim") reproduce += " --backend " + backend;
  RC_FAIL(format_verdict(verdict) + "scenario: " + summarize(scenario) +
          "\nreproduce: " + reproduce + " --property " + property);
}

}  // namespace capcheck::suites
