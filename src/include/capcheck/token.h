// Serialized forms of a Scenario: JSON (written by hand) and the compact,
// versioned reproduction token `cc2:<base64url>`, which names the subject
// and its options with the scenario (docs/reproduce.md). `cc1:` tokens (the
// scenario alone) are still read.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "capcheck/scenario.h"

namespace capcheck {

/// The prefix of every token written; the digit is the encoding version.
inline constexpr std::string_view kTokenPrefix = "cc2:";
/// The prefix of version 1 tokens, still read: a scenario without a subject.
inline constexpr std::string_view kTokenPrefixV1 = "cc1:";
/// The prefix of an engine-run token (engine_run.h): a run of the engine
/// simulator, replayed by `capcheck reproduce` and read from regression files.
inline constexpr std::string_view kRunTokenPrefix = "ccr1:";
/// Longest subject name, option name or option value in a token, in bytes.
inline constexpr std::size_t kSubjectTextMax = 256;
/// Most options a token's subject may carry.
inline constexpr std::size_t kSubjectOptionsMax = 32;
/// Longest token accepted by decode_token(), in characters.
inline constexpr std::size_t kTokenLengthMax = 1 << 20;
/// Longest scenario JSON read (`check --scenario`, from_json): the largest valid
/// scenario, pretty-printed, is about 2 MB.
inline constexpr std::size_t kScenarioJsonBytesMax = 16u << 20;

/// A subject's options by name ("bug" -> "pad-slot"), in name order.
using SubjectOptions = std::map<std::string, std::string>;

/// The subject a case ran on: its registered name and the options it was
/// built with (subject_registry.h).
struct SubjectRef {
  std::string name = "trtllm";
  SubjectOptions options;
  friend bool operator==(const SubjectRef& a, const SubjectRef& b) {
    return a.name == b.name && a.options == b.options;
  }
  friend bool operator!=(const SubjectRef& a, const SubjectRef& b) { return !(a == b); }
};
/// UsageError unless the name and each option name are 1..64 of [a-z0-9._-]
/// and each value at most kSubjectTextMax of [A-Za-z0-9._:/+,-].
void validate(const SubjectRef& subject);
/// "vllm-style" or "vllm-style bug=pad-slot".
std::string describe(const SubjectRef& subject);

/// Encodes a valid scenario with the subject it ran on. The token holds the
/// scenario itself (not an RNG state), so it survives generator changes and
/// replays on every backend.
std::string encode_token(const Scenario& scenario, const SubjectRef& subject = {});

/// What a token holds. A `cc1:` token names no subject (`names_subject`
/// false, `subject` the built-in "trtllm").
struct DecodedToken {
  Scenario scenario;
  SubjectRef subject;
  bool names_subject = false;
};

/// Decodes and validates a token of either version; throws UsageError naming
/// what is wrong (prefix, alphabet, truncation, checksum, trailing bytes, a
/// subject name, or a field).
DecodedToken decode_subject_token(std::string_view token);
/// The scenario of a token, whatever subject it names.
Scenario decode_token(std::string_view token);

/// True when `token` starts with kRunTokenPrefix.
bool is_run_token(std::string_view token);
/// The subject a `ccr1:` run token names, read from its framing (prefix,
/// alphabet, checksum) and header; the rest is engine_run.h's to decode.
/// UsageError as decode_subject_token.
SubjectRef run_token_subject(std::string_view token);

namespace detail {
/// The token framing around an encoded payload: the payload's FNV-1a checksum
/// appended, base64url, the `cc2:` prefix (`cc1:` for the _v1 form). For
/// fuzzers that reach the decoder past the checksum with payloads of their own.
std::string frame_token_payload(std::string_view payload);
std::string frame_token_payload_v1(std::string_view payload);
/// The `cc1:` token of a scenario (tests and fuzzers of the version 1 reader).
std::string encode_token_v1(const Scenario& scenario);
}  // namespace detail

/// Pretty JSON with the field names of Scenario (TensorRT-LLM's names).
std::string to_json(const Scenario& scenario, int indent = 2);

/// Parses and validates JSON text. Unknown fields, missing fields and values of
/// the wrong type are UsageErrors that name the field.
Scenario from_json(std::string_view text);

}  // namespace capcheck
