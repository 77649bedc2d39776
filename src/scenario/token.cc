#include "capcheck/token.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>

#include "capcheck/errors.h"
#include "capcheck/hash.h"

namespace capcheck {

namespace {

// ---------------------------------------------------------------- base64url

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char byte : bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63u]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63u]);
  return out;
}

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::string base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) {
    throw UsageError("invalid token: its length (" + std::to_string(text.size()) +
                     " characters after the prefix) is not a base64url length; was it truncated?");
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int value = base64url_value(text[i]);
    if (value < 0) {
      throw UsageError("invalid token: character " + std::to_string(i + kTokenPrefix.size()) +
                       " ('" + std::string(1, text[i]) +
                       "') is not in the base64url alphabet [A-Za-z0-9_-]");
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFFu));
    }
  }
  // The unused low bits of the last character must be zero: otherwise two
  // different tokens would decode to the same scenario.
  if (bits > 0 && (acc & ((1u << bits) - 1u)) != 0) {
    throw UsageError("invalid token: its last character is not canonical base64url; the token "
                     "was altered (copy it whole)");
  }
  return out;
}

// ------------------------------------------------------- compact encoding

constexpr std::uint8_t kFormatVersionV1 = 1;
constexpr std::uint8_t kFormatVersion = 2;

void append_checksum(std::string& bytes) {
  const std::uint32_t sum = fnv1a32(bytes);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((sum >> (8 * i)) & 0xFFu));
}

class Writer {
 public:
  void varint(std::uint64_t value) {
    while (value >= 0x80) {
      bytes_.push_back(static_cast<char>((value & 0x7F) | 0x80));
      value >>= 7;
    }
    bytes_.push_back(static_cast<char>(value));
  }
  void signed_value(std::int32_t value) {
    // Zigzag in unsigned arithmetic (a left shift of a negative value is UB).
    const auto v = static_cast<std::int64_t>(value);
    varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void array(const std::vector<std::int32_t>& values) {
    varint(values.size());
    for (auto v : values) signed_value(v);
  }
  void text(const std::string& value) {
    varint(value.size());
    bytes_ += value;
  }
  std::string payload() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}

  std::uint64_t varint(const char* field) {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= end_) truncated(field);
      const auto byte = static_cast<unsigned char>(bytes_[pos_++]);
      // One encoding per value: the tenth byte holds only bit 63, and a last
      // byte of zero (after the first) would be a longer spelling of the same
      // value. Otherwise two tokens would decode to one scenario.
      if (shift == 63 && byte > 1) {
        throw UsageError(std::string("invalid token: field ") + field +
                         " is a varint above 2^64 - 1");
      }
      value |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) {
        if (byte == 0 && shift > 0) {
          throw UsageError(std::string("invalid token: field ") + field +
                           " is a non-canonical varint (a redundant zero byte); the token was "
                           "not written by capcheck");
        }
        return value;
      }
    }
    throw UsageError(std::string("invalid token: field ") + field + " is an over-long varint");
  }
  std::int32_t signed_value(const char* field) {
    const std::uint64_t raw = varint(field);
    const auto value = static_cast<std::int64_t>((raw >> 1) ^ (~(raw & 1) + 1));
    if (value < INT32_MIN || value > INT32_MAX) {
      throw UsageError(std::string("invalid token: field ") + field + " is out of 32-bit range");
    }
    return static_cast<std::int32_t>(value);
  }
  std::int32_t small(const char* field) {
    const std::uint64_t value = varint(field);
    if (value > static_cast<std::uint64_t>(kTokensMax)) {
      throw UsageError(std::string("invalid token: field ") + field + " is " +
                       std::to_string(value) + ", above the limit " + std::to_string(kTokensMax));
    }
    return static_cast<std::int32_t>(value);
  }
  std::vector<std::int32_t> array(const char* field) {
    const std::int32_t count = small(field);
    std::vector<std::int32_t> values;
    values.reserve(static_cast<std::size_t>(count));
    for (std::int32_t i = 0; i < count; ++i) values.push_back(signed_value(field));
    return values;
  }
  std::string text(const char* field) {
    const std::uint64_t size = varint(field);
    if (size > kSubjectTextMax) {
      throw UsageError(std::string("invalid token: field ") + field + " is " +
                       std::to_string(size) + " bytes, above the limit " +
                       std::to_string(kSubjectTextMax));
    }
    if (end_ - pos_ < size) truncated(field);
    std::string value = bytes_.substr(pos_, static_cast<std::size_t>(size));
    pos_ += static_cast<std::size_t>(size);
    return value;
  }
  void verify_checksum() {
    if (bytes_.size() < 5) {
      throw UsageError("invalid token: only " + std::to_string(bytes_.size()) +
                       " bytes of payload; it was truncated");
    }
    end_ = bytes_.size() - 4;
    std::uint32_t stored = 0;
    for (int i = 0; i < 4; ++i) {
      stored |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes_[end_ + i])) << (8 * i);
    }
    if (stored != fnv1a32(std::string_view(bytes_).substr(0, end_))) {
      throw UsageError(
          "invalid token: checksum mismatch; the token was altered or cut (copy it whole)");
    }
  }
  void expect_end() const {
    if (pos_ != end_) {
      throw UsageError("invalid token: " + std::to_string(end_ - pos_) +
                       " unexpected bytes after the scenario");
    }
  }

 private:
  [[noreturn]] void truncated(const char* field) {
    throw UsageError(std::string("invalid token: truncated inside field ") + field);
  }
  const std::string& bytes_;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
};

}  // namespace

namespace {
// The scenario's fields, the same in both versions.
void write_scenario(Writer& w, const Scenario& s) {
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
  Writer w;
  w.varint(kFormatVersion);
  w.text(subject.name);
  w.varint(subject.options.size());
  for (const auto& [name, value] : subject.options) {
    w.text(name);
    w.text(value);
  }
  write_scenario(w, s);
  return detail::frame_token_payload(w.payload());
}

namespace detail {
std::string frame_token_payload(std::string_view payload) {
  std::string bytes(payload);
  append_checksum(bytes);
  return std::string(kTokenPrefix) + base64url_encode(bytes);
}

std::string encode_token_v1(const Scenario& s) {
  validate(s);
  Writer w;
  w.varint(kFormatVersionV1);
  write_scenario(w, s);
  return frame_token_payload_v1(w.payload());
}

std::string frame_token_payload_v1(std::string_view payload) {
  std::string bytes(payload);
  append_checksum(bytes);
  return std::string(kTokenPrefixV1) + base64url_encode(bytes);
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
  const std::string bytes = base64url_decode(token.substr(kTokenPrefix.size()));
  Reader r(bytes);
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
  if (!v1) {
    decoded.subject.name = r.text("subject");
    const std::uint64_t count = r.varint("subject options");
    if (count > kSubjectOptionsMax) {
      throw UsageError("invalid token: " + std::to_string(count) + " subject options, above the "
                       "limit " + std::to_string(kSubjectOptionsMax));
    }
    for (std::uint64_t k = 0; k < count; ++k) {
      std::string name = r.text("subject option name");
      std::string value = r.text("subject option value");
      if (!decoded.subject.options.empty() && decoded.subject.options.rbegin()->first >= name) {
        throw UsageError("invalid token: subject options are not in canonical order; the token "
                         "was not written by capcheck");
      }
      decoded.subject.options.emplace(std::move(name), std::move(value));
    }
    try {
      validate(decoded.subject);
    } catch (const UsageError& e) {
      throw UsageError(std::string("invalid token: ") + e.what());
    }
  }
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
