// The one builder of what a failure prints: the command that reproduces a
// scenario, and the report of a failed verdict with it. Every runner (CLI,
// property suites, engine runs, fuzzers, the hang watchdog) prints these.
#pragma once

#include <string>
#include <string_view>

#include "capcheck/properties.h"
#include "capcheck/scenario.h"

namespace capcheck {

/// "capcheck reproduce <token> [--subject S] [--backend B] [--property P]";
/// the subject is left out when it is empty or "trtllm" (the default), the
/// backend when it is empty or the subject's default ("sim"; "emulator" for a
/// LibTorch subject), the property when empty.
std::string reproduce_command(const Scenario& scenario, std::string_view backend = "",
                              std::string_view property = "", std::string_view subject = "");

/// The same for a token already encoded.
std::string reproduce_command_for_token(std::string_view token, std::string_view backend = "",
                                        std::string_view property = "",
                                        std::string_view subject = "");

/// "scenario: <summary>", the verdict (format_verdict) and "reproduce: <command>".
std::string failure_report(const Verdict& verdict, const Scenario& scenario,
                           std::string_view backend = "", std::string_view subject = "");

}  // namespace capcheck
