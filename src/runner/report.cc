#include "capcheck/report.h"

#include "capcheck/token.h"

namespace capcheck {

std::string reproduce_command(const Scenario& scenario, std::string_view backend,
                              std::string_view property, std::string_view subject) {
  return reproduce_command_for_token(encode_token(scenario), backend, property, subject);
}

std::string reproduce_command_for_token(std::string_view token, std::string_view backend,
                                        std::string_view property, std::string_view subject) {
  std::string command = "capcheck reproduce " + std::string(token);
  const bool op_level = subject.empty() || subject == "trtllm";
  if (!op_level) command += " --subject " + std::string(subject);
  const std::string_view default_backend = op_level ? "sim" : "emulator";
  if (!backend.empty() && backend != default_backend) command += " --backend " + std::string(backend);
  if (!property.empty()) command += " --property " + std::string(property);
  return command;
}

std::string failure_report(const Verdict& verdict, const Scenario& scenario,
                           std::string_view backend, std::string_view subject) {
  return "scenario: " + summarize(scenario) + '\n' + format_verdict(verdict) +
         "reproduce: " + reproduce_command(scenario, backend, verdict.property, subject) + '\n';
}

}  // namespace capcheck
