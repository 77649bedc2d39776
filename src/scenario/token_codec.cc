#include "capcheck/detail/token_codec.h"

namespace capcheck::detail {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
}  // namespace

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

namespace {
int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}
}  // namespace

std::string base64url_decode(std::string_view text, std::size_t prefix_size) {
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
      throw UsageError("invalid token: character " + std::to_string(i + prefix_size) +
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

std::string frame(std::string_view prefix, std::string_view payload) {
  std::string bytes(payload);
  const std::uint32_t sum = fnv1a32(bytes);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((sum >> (8 * i)) & 0xFFu));
  return std::string(prefix) + base64url_encode(bytes);
}

}  // namespace capcheck::detail
