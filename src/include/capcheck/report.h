// The one builder of what a failure prints: the command that reproduces a
// scenario, and the report of a failed verdict with it. Every runner (CLI,
// property suites, engine runs, fuzzers, the hang watchdog) prints these.
#pragma once

#include <string>
#include <string_view>

#include "capcheck/properties.h"
#include "capcheck/scenario.h"
#include "capcheck/token.h"

namespace capcheck {

/// Where a case ran, for the reproduce line and the summary: the subject
/// (the token names it), the plugin that registers it ("" for a built-in
/// one), the backend, and the scenario fields the subject reads.
struct CaseContext {
  SubjectRef subject;
  std::string plugin;
  std::string backend;
  ScenarioFields fields = kAllScenarioFields;
};

/// "capcheck reproduce <token> [--plugin P] [--backend B] [--property P]"
/// (the token names the subject); the backend is left out when it is empty
/// or the subject's default ("sim" for trtllm, "emulator" for any other),
/// the property when empty.
std::string reproduce_command(const Scenario& scenario, const CaseContext& context = {},
                              std::string_view property = "");

/// The same for a token already encoded.
std::string reproduce_command_for_token(std::string_view token, const CaseContext& context = {},
                                        std::string_view property = "");

/// "scenario: <summary>", the verdict (format_verdict) and "reproduce: <command>".
std::string failure_report(const Verdict& verdict, const Scenario& scenario,
                           const CaseContext& context = {});

}  // namespace capcheck
