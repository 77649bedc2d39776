#include "capcheck/report.h"

namespace capcheck {

std::string reproduce_command(const Scenario& scenario, const CaseContext& context,
                              std::string_view property) {
  return reproduce_command_for_token(encode_token(scenario, context.subject), context, property);
}

std::string reproduce_command_for_token(std::string_view token, const CaseContext& context,
                                        std::string_view property) {
  std::string command = "capcheck reproduce " + std::string(token);
  if (!context.plugin.empty()) command += " --plugin " + context.plugin;
  const std::string_view default_backend = context.subject.name == "trtllm" ? "sim" : "emulator";
  if (!context.backend.empty() && context.backend != default_backend) {
    command += " --backend " + context.backend;
  }
  if (!property.empty()) command += " --property " + std::string(property);
  return command;
}

std::string failure_report(const Verdict& verdict, const Scenario& scenario,
                           const CaseContext& context) {
  return "scenario: " + summarize(scenario, context.fields) + '\n' + format_verdict(verdict) +
         "reproduce: " + reproduce_command(scenario, context, verdict.property) + '\n';
}

}  // namespace capcheck
