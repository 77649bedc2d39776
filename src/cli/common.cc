#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fmt/core.h>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "capcheck/harness.h"
#include "capcheck/detail/files.h"
#include "capcheck/errors.h"
#include "capcheck/token.h"
#include "capcheck/registry.h"
#include "commands.h"

namespace capcheck::cli {

namespace {
std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int signal) {
  g_signal = signal;
  g_stop.store(true, std::memory_order_relaxed);
}
}  // namespace

void install_signal_handlers() {
  // SIGINT and SIGTERM stop the run at the next case boundary (a second one
  // kills the process: SA_RESETHAND). SIGPIPE (stdout piped into `head`) stops
  // it the same way, so regressions are still saved; writes then fail with
  // EPIPE instead of killing the process. SIGXFSZ is ignored so that a
  // file-size limit turns into a write error that is reported.
  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigemptyset(&stop.sa_mask);
  stop.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);
  stop.sa_flags = SA_RESTART;
  sigaction(SIGPIPE, &stop, nullptr);
  std::signal(SIGXFSZ, SIG_IGN);
}

const std::atomic<bool>* stop_flag() { return &g_stop; }

int stop_signal() { return g_signal; }

void request_stop() { g_stop.store(true, std::memory_order_relaxed); }

void clear_stop() {
  g_signal = 0;
  g_stop.store(false, std::memory_order_relaxed);
}

std::string stdout_error() {
  std::cout.flush();
  if (std::fflush(stdout) != 0 || std::ferror(stdout) || !std::cout) {
    const int cause = errno;
    std::cout.clear();
    return std::string("cannot write standard output") + (cause ? std::string(": ") + std::strerror(cause) : "");
  }
  return "";
}

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
  return detail::read_bounded_file(path, kScenarioJsonBytesMax, "--scenario");
}

CLI::Validator one_of(std::vector<std::string> allowed) {
  return CLI::Validator(
      [allowed](std::string& value) -> std::string {
        for (const auto& a : allowed) {
          if (value == a) return "";
        }
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return "must be one of " + list + " (got " + quote_input(value) + ")";
      },
      "");
}

namespace {

// `value` without leading zeros, when it is a plain decimal number (digits
// only, at most `digits_max` after the zeros); "" otherwise.
std::string canonical_decimal(const std::string& value, std::size_t digits_max) {
  if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) return "";
  const auto first = value.find_first_not_of('0');
  std::string digits = first == std::string::npos ? "0" : value.substr(first);
  return digits.size() <= digits_max ? digits : "";
}

// a <= b for decimal strings without leading zeros.
bool decimal_le(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() < b.size() : a <= b;
}

}  // namespace

CLI::Validator decimal(std::uint64_t min, std::uint64_t max) {
  CAPCHECK_ASSERT(min <= max);
  return CLI::Validator(
      [min, max](std::string& value) -> std::string {
        // Digits only, read in base 10 (never octal for a leading 0, never
        // hex), range-checked as text before conversion so nothing saturates.
        const std::string digits = canonical_decimal(value, 20);
        if (!digits.empty() && decimal_le(digits, std::to_string(max)) &&
            decimal_le(std::to_string(min), digits)) {
          value = digits;
          return "";
        }
        return "must be a decimal integer from " + std::to_string(min) + " to " +
               std::to_string(max) + " (got " + quote_input(value) + ")";
      },
      "");
}

CLI::Validator unsigned_integer() { return decimal(0, UINT64_MAX); }

CLI::Validator duration(double max) {
  return CLI::Validator(
      [max](std::string& value) -> std::string {
        // Plain decimal notation only (no nan, inf or hex floats), finite, in range.
        const bool plain = !value.empty() && value.find_first_not_of("0123456789.eE+-") ==
                                                 std::string::npos;
        char* end = nullptr;
        const double seconds = plain ? std::strtod(value.c_str(), &end) : 0.0;
        if (plain && end && *end == '\0' && std::isfinite(seconds) && seconds >= 0 &&
            seconds <= max) {
          return "";
        }
        return fmt::format("must be a number of seconds from 0 to {:g} (got {})", max,
                           quote_input(value));
      },
      "");
}

const SubjectEntry& resolve_subject(CommonOptions& common, const DecodedToken* token,
                                    SubjectOptions* options) {
  load_plugins_from_env();
  for (const std::string& plugin : common.plugins) load_plugin(plugin);
  const bool token_names = token && token->names_subject;
  if (!common.subject.empty() && token_names && common.subject != token->subject.name) {
    throw UsageError("the token was written for subject " + token->subject.name +
                     ", not for --subject " + common.subject +
                     "; a token reproduces only under its own subject (leave --subject out)");
  }
  if (common.subject.empty()) common.subject = token_names ? token->subject.name : "trtllm";
  const SubjectEntry& entry = find_subject(common.subject);
  if (token && !token_names && !entry.builtin_scenarios) {
    throw UsageError("a cc1: token names no subject and holds a built-in TensorRT-LLM scenario; "
                     "subject " + entry.name + " does not read those (use a token it wrote)");
  }
  SubjectOptions given = token_names ? token->subject.options : SubjectOptions{};
  for (auto& [name, value] : parse_option_assignments(common.options)) given[name] = value;
  *options = resolve_options(entry, given);
  if (common.backend.empty()) common.backend = entry.devices.front();
  return entry;
}

OpenSubjects open_subjects(CommonOptions& common, std::vector<const PropertyInfo*>& properties,
                           const DecodedToken* token) {
  const bool named = !common.properties.empty();
  OpenSubjects open;
  SubjectOptions options;
  open.entry = &resolve_subject(common, token, &options);
  open.context.subject = SubjectRef{open.entry->name, options};
  open.context.plugin = open.entry->plugin;
  open.context.backend = common.backend;
  open.context.fields = open.entry->fields;
  Subjects* unguarded = nullptr;
  open.subjects = make_subjects(*open.entry, SubjectRequest{common.backend, options}, &unguarded);
  open.unguarded = unguarded;
  const auto agree = std::find_if(properties.begin(), properties.end(),
                                  [](const PropertyInfo* p) { return p->name == "backends_agree"; });
  if (agree == properties.end()) return open;
  if (auto* harness = dynamic_cast<Harness*>(unguarded)) {
    add_peers(*harness, common.backend, properties, named);
    return open;
  }
  if (named) {
    throw UsageError("backends_agree compares backends of an op-level subject; subject " +
                     common.subject + " has one device per run (compare it with the op-level "
                     "subject through verdicts_agree, docs/torch-subjects.md)");
  }
  std::cout << "backends_agree skipped: subject " << common.subject << " runs on one device\n";
  properties.erase(agree);
  return open;
}

SubjectsFactory fresh_subjects(const CommonOptions& common, const DecodedToken* token) {
  return [common, token]() {
    std::vector<const PropertyInfo*> none;
    CommonOptions again = common;
    return open_subjects(again, none, token).subjects;
  };
}

void add_common(CLI::App* command, CommonOptions& common, bool properties) {
  command->add_option("--subject", common.subject,
                      "subject (see `list`): trtllm (default), trtllm-torch, trtllm-torch-mrope, "
                      "or one a --plugin registers; reproduce: the token's");
  command->add_option("--option,-o", common.options,
                      "subject option NAME=VALUE (repeatable; see `list`)");
  command->add_option("--plugin", common.plugins,
                      "shared library registering subjects (repeatable; also CAPCHECK_PLUGIN_PATH)");
  command->add_option("--backend,-b", common.backend,
                      "device: sim (default), torch or cuda for an op-level subject; emulator "
                      "(default) or cuda for a LibTorch one (see `list`)");
  if (properties) {
    command->add_option("--property,-p", common.properties,
                        "property to run (repeatable; default: every non-canary property)");
  }
}

}  // namespace capcheck::cli
