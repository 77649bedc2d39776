// The framing every capcheck token shares: canonical varints and zigzag
// integers, length-prefixed text, an FNV-1a checksum, base64url. The scenario
// token (token.h) and the engine-run token (engine_run.h) are both written
// with it; a reader refuses every non-canonical spelling, so two different
// tokens never decode to the same value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/errors.h"
#include "capcheck/hash.h"
#include "capcheck/scenario.h"
#include "capcheck/token.h"

namespace capcheck::detail {

std::string base64url_encode(const std::string& bytes);
/// UsageError naming the first bad character (counted after a prefix of
/// `prefix_size` characters), a length that no encoding has, or a last
/// character with nonzero unused bits.
std::string base64url_decode(std::string_view text, std::size_t prefix_size);
/// `prefix` + base64url(payload + its FNV-1a checksum, little-endian): the
/// framing of every token.
std::string frame(std::string_view prefix, std::string_view payload);

/// Builds a token payload field by field.
class TokenWriter {
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

/// Reads a payload back; every field read names itself in its UsageError.
/// verify_checksum() first (it fixes where the fields end), expect_end() last.
class TokenReader {
 public:
  explicit TokenReader(const std::string& bytes) : bytes_(bytes) {}

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
  void expect_end(const char* what = "scenario") const {
    if (pos_ != end_) {
      throw UsageError("invalid token: " + std::to_string(end_ - pos_) +
                       " unexpected bytes after the " + std::string(what));
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

/// The encoding version of `ccr1:` run tokens.
inline constexpr std::uint8_t kRunFormatVersion = 1;
/// The payload of a run token (prefix checked, base64url decoded, checksum
/// still on).
std::string run_token_payload(std::string_view token);
/// The subject header every named token starts with (after its version):
/// name, option count, options in name order; validated.
void write_subject(TokenWriter& w, const SubjectRef& subject);
SubjectRef read_subject(TokenReader& r);
/// A run token's checksum, version and subject, leaving `r` at its configuration.
SubjectRef read_run_header(TokenReader& r);

}  // namespace capcheck::detail
