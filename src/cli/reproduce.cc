// capcheck reproduce / check: the selected properties once on one scenario.
#include <fmt/core.h>

#include <iostream>

#include "capcheck/harness.h"
#include "capcheck/errors.h"
#include "capcheck/registry.h"
#include "capcheck/report.h"
#include "capcheck/token.h"
#include "commands.h"

namespace capcheck::cli {

// Runs the selected properties once on `scenario` (reproduce and check).
int check_scenario(CommonOptions common, const Scenario& scenario, const DecodedToken* token,
                   bool print_json, bool dump) {
  auto properties = select_properties(common.properties);
  OpenSubjects open = open_subjects(common, properties, token);
  Subjects& subjects = open.get();
  const CaseContext& context = open.context;
  std::cout << "subject: " << describe(context.subject);
  if (token && token->names_subject && token->subject.options != context.subject.options) {
    std::cout << " (the token was written with " << describe(token->subject) << ")";
  }
  std::cout << '\n';
  if (!context.plugin.empty()) std::cout << "plugin: " << context.plugin << '\n';
  std::cout << "backend: " << common.backend << '\n';
  std::cout << "scenario: " << summarize(scenario, context.fields) << '\n';
  if (print_json) std::cout << to_json(scenario) << '\n';
  if (dump) print_dump(open.unguarded, context.subject.name, scenario, std::cout);
  int violated = 0;
  for (const PropertyInfo* property : properties) {
    if (stop_flag()->load()) {
      std::cerr << "capcheck: interrupted before " << property->name << '\n';
      return 128 + stop_signal();
    }
    const Verdict verdict = check_property(*property, subjects, scenario);
    std::cout << format_verdict(verdict);
    if (!verdict.passed) {
      ++violated;
      std::cout << "reproduce: " << reproduce_command(scenario, context, verdict.property)
                << '\n';
    }
  }
  std::cout << fmt::format("summary: {} propert{} checked, {} passed, {} violated\n",
                           properties.size(), properties.size() == 1 ? "y" : "ies",
                           properties.size() - violated, violated);
  if (const std::string error = stdout_error(); !error.empty()) {
    std::cerr << "capcheck: " << error << '\n';
    return static_cast<int>(ExitCode::kIncomplete);
  }
  return violated ? static_cast<int>(ExitCode::kPropertyViolated) : 0;
}

}  // namespace capcheck::cli
