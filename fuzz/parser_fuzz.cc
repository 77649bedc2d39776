// The parser fuzzer: every input ends in a Scenario (or an engine run) or a
// capcheck::UsageError, never another exception, a crash, a leak or undefined
// behaviour (run it under ASan/UBSan: the `fuzz` preset). Each input goes
// five ways:
//   1. as text to decode_token();
//   2. as text to from_json();
//   3. as the raw payload of a token: the harness appends the FNV-1a checksum
//      and base64url-encodes it, so the varint reader and validate() behind
//      the checksum are fuzzed too (random text almost never passes it);
//   4. as text to decode_run_token() (a `ccr1:` run token);
//   5. as the raw payload of a run token, framed the same way.
// Every scenario that comes back must survive both round trips:
// decode_token(encode_token(s)) == s and from_json(to_json(s)) == s, and an
// accepted JSON input must mean what it says: each of its fields
// re-serializes exactly as to_json() writes the parsed scenario; and an
// accepted token is canonical: encode_token(decode_token(t)) == t, and so is
// an accepted run token: encode_run_token(decode_run_token(t)) == t.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "capcheck/detail/token_codec.h"
#include "capcheck/engine_run.h"
#include "capcheck/errors.h"
#include "capcheck/scenario.h"
#include "capcheck/token.h"

namespace capcheck {
namespace {

std::string wrap_payload(std::string_view payload) { return detail::frame_token_payload(payload); }

[[noreturn]] void fail(const char* path, const std::string& what, std::string_view input) {
  std::fprintf(stderr, "\n==== parser_fuzz: %s: %s\ninput (%zu bytes): %.*s\n", path, what.c_str(),
               input.size(), static_cast<int>(std::min<std::size_t>(input.size(), 2000)),
               input.data());
  std::fflush(stderr);
  std::abort();
}

void check_round_trips(const char* path, const Scenario& s, std::string_view input) {
  std::string token;
  try {
    token = encode_token(s);
    if (decode_token(token) != s) fail(path, "decode_token(encode_token(s)) != s: " + token, input);
    const std::string json = to_json(s);
    if (from_json(json) != s) fail(path, "from_json(to_json(s)) != s:\n" + json, input);
    if (from_json(to_json(s, -1)) != s) fail(path, "from_json(to_json(s, -1)) != s", input);
  } catch (const std::exception& e) {
    fail(path, std::string("a round trip of an accepted scenario threw: ") + e.what(), input);
  }
}

// An accepted JSON scenario means what its text says: every field present in
// the input re-serializes (nlohmann's dump) exactly as to_json() writes the
// parsed value. Dumps, not json equality: nlohmann compares an unsigned
// 18446744073709551615 equal to a signed -1.
void check_json_fields_kept(const Scenario& s, std::string_view input) {
  const auto given = nlohmann::json::parse(input.begin(), input.end());
  const auto written = nlohmann::json::parse(to_json(s));
  for (const auto& item : given.items()) {
    const auto it = written.find(item.key());
    if (it == written.end()) fail("from_json", "to_json() drops field " + item.key(), input);
    if (item.value().dump() != it->dump()) {
      fail("from_json",
           "field '" + item.key() + "' was accepted as " + it->dump() + " but the input says " +
               item.value().dump(),
           input);
    }
  }
}

// What `parse` makes of `text`: its value, or nothing for a UsageError; any
// other exception is a finding.
template <typename Parse>
auto parsed(const char* path, Parse parse, const std::string& text, std::string_view input)
    -> std::optional<decltype(parse(text))> {
  try {
    return parse(text);
  } catch (const UsageError&) {
    return std::nullopt;
  } catch (const std::exception& e) {
    fail(path, std::string("threw a non-UsageError exception: ") + e.what(), input);
  } catch (...) {
    fail(path, "threw a non-exception object", input);
  }
}

// Runs `parse` on `text`: a Scenario (then its round trips) or a UsageError.
template <typename Parse>
void parse_one(const char* path, Parse parse, const std::string& text, std::string_view input) {
  const std::optional<Scenario> parsed_scenario = parsed(path, parse, text, input);
  if (!parsed_scenario) return;
  const Scenario& s = *parsed_scenario;
  check_round_trips(path, s, input);
  if (std::string_view(path) == "from_json") check_json_fields_kept(s, input);
}

// The payload inside `token` (base64url-decoded, checksum dropped); empty
// when it is not base64url.
std::string unwrap_payload(std::string_view token) {
  std::string bytes;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : token.substr(kTokenPrefix.size())) {
    int value = -1;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    if (c >= '0' && c <= '9') value = c - '0' + 52;
    if (c == '-') value = 62;
    if (c == '_') value = 63;
    if (value < 0) return {};
    acc = (acc << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<char>((acc >> bits) & 0xFFu));
    }
  }
  return bytes.size() < 4 ? std::string() : bytes.substr(0, bytes.size() - 4);
}

// A self-test at start-up: wrap_payload() still matches src/token.cc, so path
// 3 really gets past the checksum (the token format grows with Scenario).
void check_wrap_payload_matches_library() {
  Scenario scenario;
  scenario.key = GraphKey{2, 1};
  scenario.num_contexts = 1;
  scenario.seq_lens = {3, 2};
  scenario.kv_lens = {3, 7};
  scenario.previous_pos_id_offsets = {1, 1};
  scenario.previous_kv_lens_offsets = {2};
  scenario.input_ids = {5, 6, 7, 8, 9};
  scenario.position_ids = {0, 1, 2, 5, 6};
  scenario.num_accepted_tokens = {0};
  const std::string token = encode_token(scenario);
  const std::string rewrapped = wrap_payload(unwrap_payload(token));
  if (rewrapped != token || decode_token(rewrapped) != scenario) {
    std::fprintf(stderr,
                 "parser_fuzz: wrap_payload() no longer matches the library's token encoding "
                 "(%s vs %s); update fuzz/parser_fuzz.cc\n",
                 rewrapped.c_str(), token.c_str());
    std::abort();
  }
}

}  // namespace
}  // namespace capcheck

namespace capcheck {
namespace {
// One token per scenario: a token that decodes is exactly the token its
// scenario encodes to (no redundant varint bytes, no wrapped values, no
// non-canonical base64url).
void check_canonical(const char* path, const std::string& token, std::string_view input) {
  DecodedToken d;
  try {
    d = decode_subject_token(token);
  } catch (const UsageError&) {
    return;  // rejected inputs are parse_one's business
  }
  const std::string again = d.names_subject ? encode_token(d.scenario, d.subject)
                                            : detail::encode_token_v1(d.scenario);
  if (again != token) {
    fail(path, "an accepted token is not the canonical encoding of its scenario: " + token +
                   " encodes back to " + again, input);
  }
}
}  // namespace
}  // namespace capcheck

namespace capcheck {
namespace {
std::string wrap_run_payload(std::string_view payload) {
  return detail::frame(kRunTokenPrefix, payload);
}

// A run token decodes to a run or a UsageError; an accepted one is the
// canonical encoding of its run, and names the subject its header does.
void check_run_token(const char* path, const std::string& token, std::string_view input) {
  const std::optional<EngineRun> accepted =
      parsed(path, [](const std::string& t) { return decode_run_token(t); }, token, input);
  if (!accepted) return;
  const EngineRun& run = *accepted;
  try {
    const std::string again = encode_run_token(run);
    if (again != token) {
      fail(path, "an accepted run token is not the canonical encoding of its run: " + token +
                     " encodes back to " + again, input);
    }
    if (run_token_subject(token) != run.subject) fail(path, "run_token_subject differs", input);
  } catch (const std::exception& e) {
    fail(path, std::string("re-encoding an accepted run threw: ") + e.what(), input);
  }
}
}  // namespace
}  // namespace capcheck

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  capcheck::check_wrap_payload_matches_library();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace capcheck;
  const std::string text(reinterpret_cast<const char*>(data), size);
  parse_one("decode_token", [](const std::string& t) { return decode_token(t); }, text, text);
  parse_one("from_json", [](const std::string& t) { return from_json(t); }, text, text);
  parse_one("decode_token(payload)", [](const std::string& t) { return decode_token(t); },
            wrap_payload(text), text);
  check_canonical("decode_token", text, text);
  check_canonical("decode_token(payload)", wrap_payload(text), text);
  check_run_token("decode_run_token", text, text);
  check_run_token("decode_run_token(payload)", wrap_run_payload(text), text);
  return 0;
}
