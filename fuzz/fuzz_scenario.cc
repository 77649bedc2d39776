#include "fuzz_scenario.h"

#include <algorithm>
#include <fuzzer/FuzzedDataProvider.h>
#include <vector>

#include "capcheck/errors.h"
#include "capcheck/detail/model.h"

namespace capcheck {

namespace {

// Note [fixed-width choices]
// Every choice reads a fixed number of bytes whatever its range, and every
// request reads the same bytes whatever its kind: FuzzedDataProvider's own
// ConsumeIntegralInRange reads no byte for an empty range (0..0), so a
// change of one count would shift what every later byte means. With fixed
// widths a byte keeps its meaning when another byte changes, which is what
// libFuzzer's mutations and the harness's shrinking (Note [shrinking fuzz
// findings] in scenario_fuzz.cc) both rely on. Bytes that run out read as 0,
// the smallest choice.
class Choices {
 public:
  Choices(const std::uint8_t* data, std::size_t size) : bytes_(data, size) {}

  /// lo..hi from one byte; hi - lo must be below 256.
  std::int32_t in_range(std::int32_t lo, std::int32_t hi) {
    CAPCHECK_ASSERT(lo <= hi);
    CAPCHECK_ASSERT(hi - lo < 256);
    return lo + bytes_.ConsumeIntegral<std::uint8_t>() % (hi - lo + 1);
  }
  /// lo..hi from two bytes; hi - lo must be below 65536.
  std::int32_t wide_in_range(std::int32_t lo, std::int32_t hi) {
    CAPCHECK_ASSERT(lo <= hi);
    CAPCHECK_ASSERT(hi - lo < 65536);
    return lo + bytes_.ConsumeIntegral<std::uint16_t>() % (hi - lo + 1);
  }
  bool boolean() { return (bytes_.ConsumeIntegral<std::uint8_t>() & 1u) != 0; }
  std::uint32_t seed() { return bytes_.ConsumeIntegral<std::uint32_t>(); }

 private:
  FuzzedDataProvider bytes_;  // reads integers from the end of the input
};


// The choices of one request, read whatever its kind (Note [fixed-width choices]).
struct RequestChoices {
  std::int32_t context_seq_len = 1;
  std::int32_t past = 0;
  std::int32_t accepted_previous = 0;  // previous iteration: offsets
  std::int32_t accepted_now = 0;       // this iteration: the draft loop
};

}  // namespace

Scenario scenario_from_fuzz_bytes(const std::uint8_t* data, std::size_t size, Protocol protocol,
                                  Mutant mutant) {
  Choices choices(data, size);
  Scenario s;
  s.protocol = protocol;
  s.mutant = mutant;
  // The shape first (8 bytes at the end of the input), then 5 bytes per
  // request, then the token-id seed. The generation and context counts are
  // separate choices (gen_scenario() picks the total first), so lowering one
  // removes requests of one kind and leaves the other kind alone.
  std::int32_t generations = choices.in_range(0, kFuzzBatchSizeMax);
  const std::int32_t contexts = choices.in_range(0, kFuzzBatchSizeMax - generations);
  if (generations + contexts == 0) generations = 1;  // the empty input: one generation request
  const std::int32_t total = generations + contexts;
  const std::int32_t chunked = choices.in_range(0, contexts);
  const std::int32_t draft_len = choices.in_range(0, kFuzzDraftLenMax);
  s.warmups_count = choices.in_range(0, kFuzzWarmupsMax);
  // Startup capture zeroes the offsets; runtime capture (overlap scheduler,
  // speculative decoding) derives them from the previous iteration.
  const bool runtime = choices.boolean() && draft_len > 0;
  // One-model speculative decoding's draft loop, and CUDA-graph padding: the
  // last generation requests may be dummies (no previous tensor).
  s.draft_loop = choices.boolean() && draft_len > 0;
  s.num_dummy_requests = choices.in_range(0, generations);
  s.key = GraphKey{total, draft_len};
  s.num_contexts = contexts;
  s.num_chunked_ctx_requests = chunked;
  s.num_generations = generations;
  const std::int32_t first_dummy = generations - s.num_dummy_requests;

  std::vector<RequestChoices> requests(static_cast<std::size_t>(total));
  for (auto& r : requests) {
    r.context_seq_len = choices.in_range(1, kFuzzContextSeqLenMax);
    r.past = choices.wide_in_range(0, kFuzzPastKvLenMax);
    r.accepted_previous = choices.in_range(0, draft_len);
    r.accepted_now = choices.in_range(0, draft_len);
  }

  // Non-chunked context requests start at position 0; chunked context and
  // generation requests continue from `past` cached tokens.
  const std::int32_t fresh_contexts = contexts - chunked;
  s.seq_lens.clear();
  s.kv_lens.clear();
  s.position_ids.clear();
  for (std::int32_t r = 0; r < total; ++r) {
    const RequestChoices& c = requests[static_cast<std::size_t>(r)];
    const std::int32_t seq_len = r < contexts ? c.context_seq_len : 1 + draft_len;
    const std::int32_t past = r < fresh_contexts ? 0 : c.past;
    s.seq_lens.push_back(seq_len);
    s.kv_lens.push_back(past + seq_len);
    for (std::int32_t j = 0; j < seq_len; ++j) s.position_ids.push_back(past + j);
  }
  const std::int32_t tokens = s.num_tokens();
  s.input_ids = seeded_values(choices.seed(), tokens, kFuzzVocabSize);

  s.previous_pos_id_offsets.assign(static_cast<std::size_t>(tokens - s.num_ctx_tokens()), 0);
  s.previous_kv_lens_offsets.assign(static_cast<std::size_t>(s.kv_offsets_count()), 0);
  if (runtime) {
    // As gen_scenario(): one accepted count (0..draft_len) per index of
    // max(generations, chunked); new_tokens_lens = accepted + 1 per
    // generation token, accepted - draft_len per kv offset. Dummies keep 0.
    auto accepted = [&](std::int32_t i) {
      return requests[static_cast<std::size_t>(i)].accepted_previous;
    };
    for (std::int32_t g = 0; g < first_dummy; ++g) {
      for (std::int32_t j = 0; j <= draft_len; ++j) {
        s.previous_pos_id_offsets[static_cast<std::size_t>(g * (1 + draft_len) + j)] =
            accepted(g) + 1;
      }
    }
    const std::int32_t kv_offsets_count = chunked > 0 ? chunked : first_dummy;
    for (std::int32_t k = 0; k < kv_offsets_count; ++k) {
      s.previous_kv_lens_offsets[static_cast<std::size_t>(k)] = accepted(k) - draft_len;
    }
  }
  // Draft tokens accepted in this iteration, read by the draft loop.
  s.num_accepted_tokens.assign(static_cast<std::size_t>(generations), 0);
  if (s.draft_loop) {
    for (std::int32_t g = 0; g < first_dummy; ++g) {
      s.num_accepted_tokens[static_cast<std::size_t>(g)] =
          requests[static_cast<std::size_t>(contexts + g)].accepted_now;
    }
  }
  CAPCHECK_ASSERT(s.num_seqs() == s.key.batch_size);
  CAPCHECK_ASSERT(static_cast<std::int32_t>(s.input_ids.size()) == tokens);
  return s;
}

}  // namespace capcheck
