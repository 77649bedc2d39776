// The structure-aware decoder of the scenario fuzzer: libFuzzer bytes -> a
// valid Scenario, built the way properties/generators.cc builds one, so that
// every input is a reachable engine state and a mutated input stays one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "capcheck/scenario.h"

namespace capcheck {

/// Ranges of decoded scenarios: the RapidCheck generators' defaults (GenOptions).
inline constexpr std::int32_t kFuzzBatchSizeMax = 64;
inline constexpr std::int32_t kFuzzDraftLenMax = 4;
inline constexpr std::int32_t kFuzzWarmupsMax = 4;
inline constexpr std::int32_t kFuzzContextSeqLenMax = 8;
inline constexpr std::int32_t kFuzzPastKvLenMax = 256;
inline constexpr std::int32_t kFuzzVocabSize = 32000;

/// Decodes any byte string into a scenario that passes validate(). Every
/// choice reads a fixed number of bytes from the end of the input (Note
/// [fixed-width choices] in fuzz_scenario.cc) and bytes that run out read as
/// 0, the smallest choice: the empty input is one generation request with no
/// draft tokens, no warmups and zero offsets, and lower or fewer bytes give
/// smaller scenarios, which is what shrinking a finding relies on. Offsets are
/// zero (startup capture) or derived from accepted-token counts (runtime
/// capture with the overlap scheduler) exactly as gen_scenario() derives them;
/// the draft loop is on or off, and the last generation requests may be
/// padding dummies (zero offsets, nothing accepted).
Scenario scenario_from_fuzz_bytes(const std::uint8_t* data, std::size_t size, Protocol protocol,
                                  Mutant mutant);

}  // namespace capcheck
