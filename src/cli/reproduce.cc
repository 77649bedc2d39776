// capcheck reproduce / check: the selected properties once on one scenario.
#include <fmt/core.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "capcheck/detail/files.h"
#include "capcheck/harness.h"
#include "capcheck/errors.h"
#include "capcheck/registry.h"
#include "capcheck/report.h"
#include "capcheck/token.h"
#include "commands.h"

namespace capcheck::cli {

namespace {

// Writes `document` to `path` whole or not at all: a temporary file beside
// it, synced, renamed over it. OutputError (exit 3) naming the cause.
void write_json_document(const std::string& path, const nlohmann::json& document) {
  const std::string temporary = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw OutputError("--json: cannot create " + quote_input(temporary) + ": " +
                      std::strerror(errno));
  }
  const bool written = detail::write_all(fd, document.dump(2) + "\n") && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int cause = written ? errno : saved;
    ::unlink(temporary.c_str());
    throw OutputError("--json: " + quote_input(path) + " not written: " + std::strerror(cause));
  }
}

}  // namespace

// Runs the selected properties once on `scenario` (reproduce and check).
int check_scenario(CommonOptions common, const Scenario& scenario, const DecodedToken* token,
                   bool print_json, bool dump, const std::string& json_path) {
  auto properties = select_properties(common.properties);
  OpenSubjects open = open_subjects(common, properties, token);
  require_mutant_implemented(*open.entry, scenario.mutant);
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
  // --json FILE: what this prints, as one JSON document (written at the end).
  nlohmann::json document = {{"subject", context.subject.name},
                             {"subject_options", context.subject.options},
                             {"backend", common.backend},
                             {"scenario", nlohmann::json::parse(to_json(scenario))},
                             {"verdicts", nlohmann::json::array()}};
  if (dump) {
    const nlohmann::json events = collect_dump(open.unguarded, context.subject.name, scenario);
    print_dump(events, std::cout);
    document["dump"] = events;
  }
  int violated = 0;
  for (const PropertyInfo* property : properties) {
    if (stop_flag()->load()) {
      std::cerr << "capcheck: interrupted before " << property->name << '\n';
      return 128 + stop_signal();
    }
    const Verdict verdict = check_property(*property, subjects, scenario);
    std::cout << format_verdict(verdict);
    nlohmann::json v = {{"property", verdict.property},
                        {"passed", verdict.passed},
                        {"message", verdict.message},
                        {"notes", verdict.notes}};
    if (verdict.mismatch) {
      v["mismatch"] = {{"buffer", verdict.mismatch->buffer},
                       {"location", verdict.mismatch->location},
                       {"expected", verdict.mismatch->expected},
                       {"actual", verdict.mismatch->actual}};
    }
    if (!verdict.passed) v["reproduce"] = reproduce_command(scenario, context, verdict.property);
    document["verdicts"].push_back(std::move(v));
    if (!verdict.passed) {
      ++violated;
      std::cout << "reproduce: " << reproduce_command(scenario, context, verdict.property)
                << '\n';
    }
  }
  std::cout << fmt::format("summary: {} propert{} checked, {} passed, {} violated\n",
                           properties.size(), properties.size() == 1 ? "y" : "ies",
                           properties.size() - violated, violated);
  if (!json_path.empty()) write_json_document(json_path, document);
  if (const std::string error = stdout_error(); !error.empty()) {
    std::cerr << "capcheck: " << error << '\n';
    return static_cast<int>(ExitCode::kIncomplete);
  }
  return violated ? static_cast<int>(ExitCode::kPropertyViolated) : 0;
}

}  // namespace capcheck::cli
