#include "suite_support.h"
#include "capcheck/harness.h"
#include "capcheck/report.h"

#include <map>
#include <memory>

#include "capcheck/trtllm_subject.h"

namespace capcheck::suites {

Harness& harness(const std::string& backend) {
  static std::map<std::string, std::unique_ptr<Harness>> harnesses;
  auto& slot = harnesses[backend];
  if (!slot) {
    slot = std::make_unique<Harness>(make_backend(backend), make_trtllm_subject);
  }
  return *slot;
}

Harness& harness_with_peers(const std::string& backend) {
  static bool added = false;
  Harness& h = harness(backend);
  if (!added) add_available_peers(h);  // loads the torch module only here
  added = true;
  return h;
}

void require(const char* property, const Scenario& scenario, const std::string& backend) {
  const PropertyInfo& info = find_property(property);
  Harness& h = info.name == "backends_agree" ? harness_with_peers(backend) : harness(backend);
  const Verdict verdict = check_property(info, h, scenario);
  if (verdict.passed) return;
  CaseContext context;
  context.backend = backend;
  RC_FAIL(failure_report(verdict, scenario, context));
}

}  // namespace capcheck::suites
