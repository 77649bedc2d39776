#include "capcheck/token.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>

#include "capcheck/errors.h"
#include "capcheck/detail/token_codec.h"
#include "capcheck/hash.h"

namespace capcheck {

namespace {

using detail::TokenReader;
using detail::TokenWriter;

constexpr std::uint8_t kFormatVersionV1 = 1;
constexpr std::uint8_t kFormatVersion = 2;

// The scenario's fields, the same in both versions.
void write_scenario(TokenWriter& w, const Scenario& s) {
  w.varint(static_cast<std::uint64_t>(s.protocol));
  w.varint(static_cast<std::uint64_t>(s.mutant));
  w.varint(static_cast<std::uint64_t>(s.key.batch_size));
  w.varint(static_cast<std::uint64_t>(s.key.draft_len));
  w.varint(static_cast<std::uint64_t>(s.warmups_count));
  w.varint(static_cast<std::uint64_t>(s.num_contexts));
  w.varint(static_cast<std::uint64_t>(s.num_chunked_ctx_requests));
  w.varint(static_cast<std::uint64_t>(s.num_generations));
  w.array(s.seq_lens);
  w.array(s.kv_lens);
  w.array(s.previous_pos_id_offsets);
  w.array(s.previous_kv_lens_offsets);
  w.array(s.input_ids);
  w.array(s.position_ids);
  w.varint(s.draft_loop ? 1 : 0);
  w.array(s.num_accepted_tokens);
  w.varint(static_cast<std::uint64_t>(s.num_dummy_requests));
}
}  // namespace

std::string encode_token(const Scenario& s, const SubjectRef& subject) {
  validate(s);
  validate(subject);
  TokenWriter w;
  w.varint(kFormatVersion);
  detail::write_subject(w, subject);
  write_scenario(w, s);
  return detail::frame_token_payload(w.payload());
}

namespace detail {
void write_subject(TokenWriter& w, const SubjectRef& subject) {
  w.text(subject.name);
  w.varint(subject.options.size());
  for (const auto& [name, value] : subject.options) {
    w.text(name);
    w.text(value);
  }
}

SubjectRef read_subject(TokenReader& r) {
  SubjectRef subject;
  subject.name = r.text("subject");
  const std::uint64_t count = r.varint("subject options");
  if (count > kSubjectOptionsMax) {
    throw UsageError("invalid token: " + std::to_string(count) + " subject options, above the "
                     "limit " + std::to_string(kSubjectOptionsMax));
  }
  for (std::uint64_t k = 0; k < count; ++k) {
    std::string name = r.text("subject option name");
    std::string value = r.text("subject option value");
    if (!subject.options.empty() && subject.options.rbegin()->first >= name) {
      throw UsageError("invalid token: subject options are not in canonical order; the token "
                       "was not written by capcheck");
    }
    subject.options.emplace(std::move(name), std::move(value));
  }
  try {
    validate(subject);
  } catch (const UsageError& e) {
    throw UsageError(std::string("invalid token: ") + e.what());
  }
  return subject;
}

std::string frame_token_payload(std::string_view payload) { return frame(kTokenPrefix, payload); }

std::string encode_token_v1(const Scenario& s) {
  validate(s);
  TokenWriter w;
  w.varint(kFormatVersionV1);
  write_scenario(w, s);
  return frame_token_payload_v1(w.payload());
}

std::string frame_token_payload_v1(std::string_view payload) {
  return frame(kTokenPrefixV1, payload);
}
}  // namespace detail

DecodedToken decode_subject_token(std::string_view token) {
  if (token.size() > kTokenLengthMax) {
    throw UsageError("invalid token: " + std::to_string(token.size()) +
                     " characters, above the limit " + std::to_string(kTokenLengthMax));
  }
  const bool v1 = token.substr(0, kTokenPrefixV1.size()) == kTokenPrefixV1;
  if (!v1 && token.substr(0, kTokenPrefix.size()) != kTokenPrefix) {
    if (token.size() >= 4 && token.substr(0, 2) == "cc" && token[3] == ':') {
      throw UsageError("invalid token: version '" + std::string(token.substr(0, 4)) +
                       "' is not supported by this capcheck (it reads " +
                       std::string(kTokenPrefix) + " and " + std::string(kTokenPrefixV1) + ")");
    }
    throw UsageError("invalid token: it must start with '" + std::string(kTokenPrefix) +
                     "' (got '" + std::string(token.substr(0, 12)) + "')");
  }
  const std::string bytes = detail::base64url_decode(token.substr(kTokenPrefix.size()), kTokenPrefix.size());
  TokenReader r(bytes);
  r.verify_checksum();
  const auto version = r.varint("version");
  const std::uint64_t expected = v1 ? kFormatVersionV1 : kFormatVersion;
  if (version != expected) {
    throw UsageError("invalid token: encoding version " + std::to_string(version) +
                     " does not match its prefix " + std::string(token.substr(0, 4)) +
                     " (expected " + std::to_string(expected) + ")");
  }
  DecodedToken decoded;
  decoded.names_subject = !v1;
  if (!v1) decoded.subject = detail::read_subject(r);
  Scenario& s = decoded.scenario;
  const auto protocol = r.varint("protocol");
  if (protocol >= kProtocolCount) throw UsageError("invalid token: unknown protocol value");
  s.protocol = static_cast<Protocol>(protocol);
  const auto mutant = r.varint("mutant");
  if (mutant >= kMutantCount) throw UsageError("invalid token: unknown mutant value");
  s.mutant = static_cast<Mutant>(mutant);
  s.key.batch_size = r.small("batch_size");
  s.key.draft_len = r.small("draft_len");
  s.warmups_count = r.small("warmups");
  s.num_contexts = r.small("num_contexts");
  s.num_chunked_ctx_requests = r.small("num_chunked_ctx_requests");
  s.num_generations = r.small("num_generations");
  s.seq_lens = r.array("seq_lens");
  s.kv_lens = r.array("kv_lens");
  s.previous_pos_id_offsets = r.array("previous_pos_id_offsets");
  s.previous_kv_lens_offsets = r.array("previous_kv_lens_offsets");
  s.input_ids = r.array("input_ids");
  s.position_ids = r.array("position_ids");
  const auto draft_loop = r.varint("draft_loop");
  if (draft_loop > 1) throw UsageError("invalid token: field draft_loop is not 0 or 1");
  s.draft_loop = draft_loop == 1;
  s.num_accepted_tokens = r.array("num_accepted_tokens");
  s.num_dummy_requests = r.small("num_dummy_requests");
  r.expect_end();
  validate(s);
  return decoded;
}

Scenario decode_token(std::string_view token) { return decode_subject_token(token).scenario; }

std::string detail::run_token_payload(std::string_view token) {
  if (token.size() > kTokenLengthMax) {
    throw UsageError("invalid run token: " + std::to_string(token.size()) +
                     " characters, above the limit " + std::to_string(kTokenLengthMax));
  }
  if (!is_run_token(token)) {
    throw UsageError("invalid run token: it must start with '" + std::string(kRunTokenPrefix) +
                     "' (got '" + std::string(token.substr(0, 12)) + "')");
  }
  return base64url_decode(token.substr(kRunTokenPrefix.size()), kRunTokenPrefix.size());
}

SubjectRef detail::read_run_header(TokenReader& r) {
  r.verify_checksum();
  const auto version = r.varint("version");
  if (version != detail::kRunFormatVersion) {
    throw UsageError("invalid run token: encoding version " + std::to_string(version) +
                     " does not match its prefix " + std::string(kRunTokenPrefix) +
                     " (expected " + std::to_string(detail::kRunFormatVersion) + ")");
  }
  return detail::read_subject(r);
}

bool is_run_token(std::string_view token) {
  return token.substr(0, kRunTokenPrefix.size()) == kRunTokenPrefix;
}

SubjectRef run_token_subject(std::string_view token) {
  const std::string bytes = detail::run_token_payload(token);
  TokenReader r(bytes);
  return detail::read_run_header(r);
}

namespace {
bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         (!first && (c == '-' || c == '_' || c == '.'));
}
bool value_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == ',';
}
void check_name(std::string_view what, std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (std::size_t i = 0; ok && i < name.size(); ++i) ok = name_char(name[i], i == 0);
  if (!ok) {
    throw UsageError(std::string(what) + " " + quote_input(name) +
                     " is not a name: 1 to 64 of [a-z0-9._-], starting with a letter or digit");
  }
}
}  // namespace

void validate(const SubjectRef& subject) {
  check_name("subject", subject.name);
  if (subject.options.size() > kSubjectOptionsMax) {
    throw UsageError("subject " + subject.name + " has " + std::to_string(subject.options.size()) +
                     " options, above the limit " + std::to_string(kSubjectOptionsMax));
  }
  for (const auto& [name, value] : subject.options) {
    check_name("subject option", name);
    bool ok = value.size() <= kSubjectTextMax;
    for (char c : value) ok = ok && value_char(c);
    if (!ok) {
      throw UsageError("value " + quote_input(value) + " of subject option " + name +
                       " must be at most " + std::to_string(kSubjectTextMax) +
                       " of [A-Za-z0-9._:/+,-]");
    }
  }
}

std::string describe(const SubjectRef& subject) {
  std::string text = subject.name;
  for (const auto& [name, value] : subject.options) text += " " + name + "=" + value;
  return text;
}

}  // namespace capcheck
