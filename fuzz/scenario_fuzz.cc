// The scenario fuzzer: libFuzzer bytes -> a valid Scenario (fuzz_scenario.h)
// -> every non-canary property on the sim backend (backends_agree against
// every other backend available here, or left out), for the protocol and
// mutant named by CAPCHECK_FUZZ_PROTOCOL / CAPCHECK_FUZZ_MUTANT (default
// reference / none), on the subject named by CAPCHECK_FUZZ_SUBJECT (default
// trtllm; with CAPCHECK_FUZZ_OPTIONS "name=value,..." and the plugins of
// CAPCHECK_PLUGIN_PATH) on its first device. A violation prints the verdict and the reproduce
// command, writes the scenario token to CAPCHECK_FUZZ_TOKEN_DIR (default: the
// directory of -artifact_prefix, else the current directory), and aborts so
// that libFuzzer writes its crash file next to it. Before reporting, the
// violation is shrunk to a smaller scenario that still violates the property
// (Note [shrinking fuzz findings]; CAPCHECK_FUZZ_SHRINK=0 turns it off).
// CAPCHECK_FUZZ_VERBOSE=1 prints every decoded scenario. See docs/fuzzing.md.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/trtllm_subject.h"
#include "capcheck/registry.h"
#include "capcheck/errors.h"
#include "capcheck/hash.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/report.h"
#include "capcheck/scenario.h"
#include "capcheck/sim_backend.h"
#include "capcheck/subject_registry.h"
#include "capcheck/token.h"
#include "fuzz_scenario.h"

namespace capcheck {
namespace {

struct FuzzConfig {
  Protocol protocol = Protocol::kReference;
  Mutant mutant = Mutant::kNone;
  std::filesystem::path token_dir = ".";
  /// CAPCHECK_FUZZ_VERBOSE=1: print every decoded scenario (to read a corpus).
  bool verbose = false;
  /// CAPCHECK_FUZZ_SHRINK=0: report a violation as found, without shrinking it.
  bool shrink = true;
  std::vector<const PropertyInfo*> properties;
  std::unique_ptr<Subjects> harness;
  CaseContext context;
};

FuzzConfig& config() {
  static FuzzConfig instance;
  return instance;
}

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : std::string(fallback);
}

// libFuzzer writes crash-<sha1> to -artifact_prefix; the token goes next to it.
std::filesystem::path artifact_dir(int argc, char** argv) {
  constexpr std::string_view kFlag = "-artifact_prefix=";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, kFlag.size()) != kFlag) continue;
    const std::string_view prefix = arg.substr(kFlag.size());
    const auto slash = prefix.rfind('/');
    if (slash == std::string_view::npos) return ".";
    return std::filesystem::path(std::string(prefix.substr(0, slash + 1)));
  }
  return ".";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

// Writes `token` with one comment line per `comment` to
// <token_dir>/capcheck-violation-<fnv1a64(token)>.token; returns the path, or
// an empty path (after a warning) when the file cannot be written.
std::filesystem::path write_token(const std::string& token, const std::vector<std::string>& comments) {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a64(token)));
  const auto path = config().token_dir / ("capcheck-violation-" + std::string(hash) + ".token");
  std::error_code error;
  std::filesystem::create_directories(config().token_dir, error);
  std::ofstream out(path, std::ios::trunc);
  for (const auto& comment : comments) out << "# " << comment << '\n';
  out << token << '\n';
  out.close();
  if (!out) {
    std::fprintf(stderr, "scenario_fuzz: warning: cannot write %s\n", path.c_str());
    return {};
  }
  return path;
}

std::string comment_for(std::string_view what, const Scenario& scenario) {
  return std::string(what) + " protocol=" + std::string(protocol_name(scenario.protocol)) +
         " mutant=" + std::string(mutant_name(scenario.mutant)) + " date=" + utc_now() +
         " (found by scenario_fuzz)";
}

[[noreturn]] void report_and_abort(const Scenario& scenario, const std::vector<Verdict>& violated,
                                   const std::string& internal_error) {
  std::fprintf(stderr, "\n==== capcheck: scenario: %s\n",
               summarize(scenario, config().context.fields).c_str());
  std::string token;
  try {
    token = encode_token(scenario, config().context.subject);
  } catch (const std::exception& e) {
    // Only a decoder bug gives an invalid scenario: show it whole instead.
    std::fprintf(stderr, "unexpected error: %s\ncannot encode the scenario: %s\n%s\n",
                 internal_error.c_str(), e.what(), to_json(scenario).c_str());
    std::fflush(stderr);
    std::abort();
  }
  std::vector<std::string> comments;
  for (const Verdict& verdict : violated) {
    std::fprintf(stderr, "%s", format_verdict(verdict).c_str());
    comments.push_back(comment_for(verdict.property, scenario));
  }
  if (!internal_error.empty()) {
    std::fprintf(stderr, "unexpected error: %s\n", internal_error.c_str());
    comments.push_back(comment_for("unexpected error: " + internal_error, scenario));
  }
  const auto path = write_token(token, comments);
  if (!path.empty()) std::fprintf(stderr, "token: %s\n", path.c_str());
  for (const Verdict& verdict : violated) {
    std::fprintf(stderr, "reproduce: %s\n",
                 reproduce_command_for_token(token, config().context, verdict.property).c_str());
  }
  if (violated.empty()) {
    std::fprintf(stderr, "reproduce: %s\n", reproduce_command_for_token(token, config().context).c_str());
  }
  std::fflush(stderr);
  std::abort();
}

// Note [shrinking fuzz findings]
// libFuzzer's -minimize_crash only shortens the input, but the size of the
// decoded scenario depends on the byte values (a 5-byte input can decode to a
// batch of 64). So the harness shrinks a violation itself before reporting
// it: it erases chunks of bytes and lowers byte values, and keeps a candidate
// only when its scenario is strictly smaller (size_key) and still violates
// the same property. Each kept step lowers the key, so shrinking ends; it is
// also bounded by kShrinkCandidatesMax and kShrinkSecondsMax. It works
// because the decoder reads fixed-width choices (Note [fixed-width choices]
// in fuzz_scenario.cc): lowering one byte changes one choice. Measured: 20
// of 20 seed-pr findings (batches of 1 to 64) shrank to the same batch-1
// scenario in 30 to 110 candidates (docs/fuzzing.md).
constexpr int kShrinkCandidatesMax = 4000;
constexpr double kShrinkSecondsMax = 5.0;

// Smaller is simpler: fewer tokens and requests first, then draft length,
// warmups, the draft loop, padding, composition, offsets and values.
using SizeKey = std::array<std::int64_t, 14>;
SizeKey size_key(const Scenario& s, const std::vector<std::uint8_t>& bytes) {
  auto sum = [](const std::vector<std::int32_t>& values) {
    std::int64_t total = 0;
    for (auto v : values) total += v < 0 ? -static_cast<std::int64_t>(v) : v;
    return total;
  };
  std::int64_t byte_sum = 0;
  for (auto b : bytes) byte_sum += b;
  return {s.num_tokens(),
          s.num_seqs(),
          s.key.draft_len,
          s.warmups_count,
          s.draft_loop ? 1 : 0,
          s.num_dummy_requests,
          s.num_contexts,
          s.num_chunked_ctx_requests,
          sum(s.previous_pos_id_offsets) + sum(s.previous_kv_lens_offsets),
          sum(s.num_accepted_tokens),
          sum(s.kv_lens),
          sum(s.input_ids),
          static_cast<std::int64_t>(bytes.size()),
          byte_sum};
}

struct ShrinkResult {
  Scenario scenario;
  int accepted = 0;
  int tried = 0;
};

ShrinkResult shrink(std::vector<std::uint8_t> bytes, const Scenario& found,
                    const PropertyInfo& property) {
  FuzzConfig& c = config();
  ShrinkResult result{found, 0, 0};
  SizeKey best = size_key(found, bytes);
  const auto start = std::chrono::steady_clock::now();
  auto out_of_budget = [&] {
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    return result.tried >= kShrinkCandidatesMax || elapsed.count() > kShrinkSecondsMax;
  };
  // True (and the candidate kept) when it is smaller and still violates `property`.
  auto try_candidate = [&](const std::vector<std::uint8_t>& candidate) {
    ++result.tried;
    const Scenario s =
        scenario_from_fuzz_bytes(candidate.data(), candidate.size(), c.protocol, c.mutant);
    const SizeKey key = size_key(s, candidate);
    if (!(key < best)) return false;
    try {
      if (check_property(property, *c.harness, s).passed) return false;
    } catch (const std::exception&) {
      return false;  // a different failure: not this one, smaller
    }
    bytes = candidate;
    best = key;
    result.scenario = s;
    ++result.accepted;
    return true;
  };
  bool progress = true;
  while (progress && !out_of_budget()) {
    progress = false;
    for (std::size_t chunk = std::max<std::size_t>(bytes.size() / 2, 1); chunk >= 1; chunk /= 2) {
      for (std::size_t at = 0; at + chunk <= bytes.size() && !out_of_budget();) {
        std::vector<std::uint8_t> candidate = bytes;
        candidate.erase(candidate.begin() + static_cast<std::ptrdiff_t>(at),
                        candidate.begin() + static_cast<std::ptrdiff_t>(at + chunk));
        if (try_candidate(candidate)) {
          progress = true;
        } else {
          at += chunk;
        }
      }
      if (chunk == 1) break;
    }
    for (std::size_t at = 0; at < bytes.size() && !out_of_budget(); ++at) {
      for (const int lower : {0, bytes[at] / 2, bytes[at] - 1}) {
        if (lower < 0 || lower >= bytes[at]) continue;
        std::vector<std::uint8_t> candidate = bytes;
        candidate[at] = static_cast<std::uint8_t>(lower);
        if (try_candidate(candidate)) {
          progress = true;
          break;
        }
      }
    }
  }
  return result;
}

std::vector<Verdict> violations(const Scenario& scenario) {
  std::vector<Verdict> violated;
  for (const PropertyInfo* property : config().properties) {
    Verdict verdict = check_property(*property, *config().harness, scenario);
    if (!verdict.passed) violated.push_back(std::move(verdict));
  }
  return violated;
}

}  // namespace
}  // namespace capcheck

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  using namespace capcheck;
  FuzzConfig& c = config();
  try {
    c.protocol = parse_protocol(env_or("CAPCHECK_FUZZ_PROTOCOL", "reference"));
    c.mutant = parse_mutant(env_or("CAPCHECK_FUZZ_MUTANT", "none"));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "scenario_fuzz: %s\n", e.what());
    std::exit(static_cast<int>(ExitCode::kUsage));
  }
  const char* token_dir = std::getenv("CAPCHECK_FUZZ_TOKEN_DIR");
  c.token_dir = token_dir != nullptr && *token_dir != '\0' ? std::filesystem::path(token_dir)
                                                           : artifact_dir(*argc, *argv);
  c.verbose = env_or("CAPCHECK_FUZZ_VERBOSE", "0") == "1";
  c.shrink = env_or("CAPCHECK_FUZZ_SHRINK", "1") != "0";
  std::string peers;
  try {
    ChosenSubject chosen =
        subject_from_environment("CAPCHECK_FUZZ_SUBJECT", "CAPCHECK_FUZZ_OPTIONS", nullptr);
    c.context.subject = chosen.subject;
    c.context.plugin = chosen.entry->plugin;
    c.context.backend = chosen.device;
    c.context.fields = chosen.entry->fields;
    Subjects* unguarded = chosen.unguarded;
    c.harness = std::move(chosen.subjects);
    // backends_agree compares sim with every other backend available here, as
    // `capcheck run` does; with none it is left out (the CLI drops it too).
    if (auto* harness = dynamic_cast<Harness*>(unguarded)) {
      for (const auto& name : add_available_peers(*harness)) {
        peers += (peers.empty() ? "" : ",") + name;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scenario_fuzz: %s\n", e.what());
    std::exit(static_cast<int>(ExitCode::kUsage));
  }
  for (const auto& property : all_properties()) {
    if (property.canary) continue;
    if (property.name == "backends_agree" && peers.empty()) continue;
    c.properties.push_back(&property);
  }
  std::fprintf(stderr,
               "scenario_fuzz: subject=%s protocol=%s mutant=%s properties=%zu peers=%s "
               "token_dir=%s\n",
               describe(c.context.subject).c_str(), std::string(protocol_name(c.protocol)).c_str(),
               std::string(mutant_name(c.mutant)).c_str(), c.properties.size(),
               peers.empty() ? "none (backends_agree left out)" : peers.c_str(),
               c.token_dir.c_str());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace capcheck;
  FuzzConfig& c = config();
  CAPCHECK_ASSERT(c.harness != nullptr);  // LLVMFuzzerInitialize ran
  Scenario scenario;
  try {
    scenario = scenario_from_fuzz_bytes(data, size, c.protocol, c.mutant);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scenario_fuzz: the decoder failed: %s\n", e.what());
    std::abort();
  }
  if (c.verbose) std::fprintf(stderr, "scenario: %s\n", summarize(scenario).c_str());
  std::vector<Verdict> violated;
  try {
    // A decoded scenario is valid by construction; a rejection is a decoder bug.
    validate(scenario);
    violated = violations(scenario);
    if (violated.empty()) return 0;
    if (c.shrink) {
      // See Note [shrinking fuzz findings].
      const ShrinkResult shrunk =
          shrink(std::vector<std::uint8_t>(data, data + size), scenario,
                 find_property(violated.front().property));
      std::fprintf(stderr,
                   "\n==== capcheck: %s violated by: %s\n"
                   "==== shrunk in %d step(s) (%d candidates tried); the shrunk case:\n",
                   violated.front().property.c_str(), summarize(scenario, c.context.fields).c_str(),
                   shrunk.accepted, shrunk.tried);
      if (shrunk.accepted > 0) {
        scenario = shrunk.scenario;
        violated = violations(scenario);
        CAPCHECK_ASSERT(!violated.empty());
      }
    }
  } catch (const std::exception& e) {
    report_and_abort(scenario, violated, e.what());
  }
  report_and_abort(scenario, violated, "");
}
