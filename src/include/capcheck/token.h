// Serialized forms of a Scenario: JSON (written by hand) and the compact,
// versioned reproduction token `cc1:<base64url>` (docs/reproduce.md).
#pragma once

#include <string>
#include <string_view>

#include "capcheck/scenario.h"

namespace capcheck {

/// The prefix of every token; the digit is the encoding version.
inline constexpr std::string_view kTokenPrefix = "cc1:";
/// Longest token accepted by decode_token(), in characters.
inline constexpr std::size_t kTokenLengthMax = 1 << 20;
/// Longest scenario JSON read (`check --scenario`, from_json): the largest valid
/// scenario, pretty-printed, is about 2 MB.
inline constexpr std::size_t kScenarioJsonBytesMax = 16u << 20;

/// Encodes a valid scenario. The token holds the scenario itself (not an RNG
/// state), so it survives generator changes and replays on every backend.
std::string encode_token(const Scenario& scenario);

/// Decodes and validates a token; throws UsageError naming what is wrong
/// (prefix, alphabet, truncation, checksum, trailing bytes, or a field).
Scenario decode_token(std::string_view token);

namespace detail {
/// The token framing around an encoded payload: the payload's FNV-1a checksum
/// appended, base64url, the `cc1:` prefix. For fuzzers that reach the decoder
/// past the checksum with payloads of their own.
std::string frame_token_payload(std::string_view payload);
}  // namespace detail

/// Pretty JSON with the field names of Scenario (TensorRT-LLM's names).
std::string to_json(const Scenario& scenario, int indent = 2);

/// Parses and validates JSON text. Unknown fields, missing fields and values of
/// the wrong type are UsageErrors that name the field.
Scenario from_json(std::string_view text);

}  // namespace capcheck
