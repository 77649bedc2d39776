// RapidCheck generators of scenarios. Generated scenarios are valid by
// construction and shrink toward one generation request, zero warmups,
// draft_len 1 and previous-iteration offsets of magnitude 1.
#pragma once

#include <rapidcheck.h>

#include <cstdint>

#include "capcheck/scenario.h"

namespace capcheck {

/// Ranges of generated scenarios. Defaults are the issue's: batch sizes 1..64,
/// warmups 0..4, draft_len 0..4.
/// Which capture the generated scenarios model.
enum class CaptureKind : std::uint8_t {
  kAny,      // both, about 1:3
  kStartup,  // TensorRT-LLM's warmup: every previous-iteration offset zero
  kRuntime,  // lazy capture with the overlap scheduler: offsets from accepted counts
};

struct GenOptions {
  Protocol protocol = Protocol::kReference;
  Mutant mutant = Mutant::kNone;
  std::int32_t batch_size_max = 64;
  std::int32_t draft_len_max = 4;
  std::int32_t warmups_max = 4;
  std::int32_t context_seq_len_max = 8;
  std::int32_t past_kv_len_max = 256;
  std::int32_t vocab_size = 32000;
  /// Every scenario has at least one chunked context request (the kv_lens
  /// branch that generation-only batches never take).
  bool require_chunked = false;
  /// One-model speculative decoding's draft loop runs in the forward whenever
  /// draft_len >= 1 (TensorRT-LLM's MTP / Eagle3 one-model path).
  bool draft_loop = true;
  CaptureKind capture = CaptureKind::kAny;
};

/// Note [CI seeds]: under CI=true, RapidCheck properties must not draw a
/// random seed. Sets RC_PARAMS before RapidCheck reads it: a fixed seed when
/// CI=true and RC_PARAMS names none, and max_success=`cases` (when `cases` >
/// 0) when RC_PARAMS names none. Runs at start-up of every program that links
/// the generators (seed only), and from capcheck::gtest_main with the
/// profile's count; what the user put in RC_PARAMS wins.
void apply_ci_rapidcheck_params(int cases);

/// The seed RapidCheck runs with under CI=true (Note [CI seeds]).
inline constexpr std::uint64_t kCiRapidcheckSeed = 20261127;

/// Throws UsageError when a range is empty or beyond the scenario limits.
void validate(const GenOptions& options);

/// Scenarios of either capture kind: startup capture (every offset zero) or
/// runtime capture with the overlap scheduler (offsets from accepted-token
/// counts: per generation token accepted + 1 >= 1, per request accepted -
/// draft_len in [-draft_len, 0]).
rc::Gen<Scenario> gen_scenario(const GenOptions& options);

}  // namespace capcheck
