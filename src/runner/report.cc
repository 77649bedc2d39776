#include "capcheck/report.h"

#include "capcheck/token.h"

namespace capcheck {

std::string reproduce_command(const Scenario& scenario, std::string_view backend,
                              std::string_view property) {
  return reproduce_command_for_token(encode_token(scenario), backend, property);
}

std::string reproduce_command_for_token(std::string_view token, std::string_view backend,
                                        std::string_view property) {
  std::string command = "capcheck reproduce " + std::string(token);
  if (!backend.empty() && backend != "sim") command += " --backend " + std::string(backend);
  if (!property.empty()) command += " --property " + std::string(property);
  return command;
}

std::string failure_report(const Verdict& verdict, const Scenario& scenario,
                           std::string_view backend) {
  return "scenario: " + summarize(scenario) + '\n' + format_verdict(verdict) +
         "reproduce: " + reproduce_command(scenario, backend, verdict.property) + '\n';
}

}  // namespace capcheck
