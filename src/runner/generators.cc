#include "capcheck/generators.h"

#include <cstdlib>
#include <string>

#include "capcheck/errors.h"
#include "capcheck/detail/model.h"

namespace capcheck {

void apply_ci_rapidcheck_params(int cases) {
  const char* ci = std::getenv("CI");
  const char* current = std::getenv("RC_PARAMS");
  std::string params = current != nullptr ? current : "";
  if (cases > 0 && params.find("max_success") == std::string::npos) {
    params += (params.empty() ? "" : " ") + std::string("max_success=") + std::to_string(cases);
  }
  if (ci != nullptr && std::string(ci) == "true" && params.find("seed") == std::string::npos) {
    params += (params.empty() ? "seed=" : " seed=") + std::to_string(kCiRapidcheckSeed);
  }
  setenv("RC_PARAMS", params.c_str(), 1);
}

namespace {
// Note [CI seeds]: before main(), so before RapidCheck loads its configuration.
const bool kCiParamsApplied = [] {
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") apply_ci_rapidcheck_params(0);
  return true;
}();
}  // namespace

void validate(const GenOptions& o) {
  auto check = [](const char* name, std::int32_t value, std::int32_t lo, std::int32_t hi) {
    if (value < lo || value > hi) {
      throw UsageError(std::string(name) + " is " + std::to_string(value) + ", allowed " +
                       std::to_string(lo) + ".." + std::to_string(hi));
    }
  };
  check("batch_size_max", o.batch_size_max, 1, kBatchSizeMax);
  check("draft_len_max", o.draft_len_max, 0, kDraftLenMax);
  check("warmups_max", o.warmups_max, 0, kWarmupsMax - 1);
  check("context_seq_len_max", o.context_seq_len_max, 1, kSeqLenMax);
  check("past_kv_len_max", o.past_kv_len_max, 0, kKvLenMax - kSeqLenMax);
  check("vocab_size", o.vocab_size, 1, 1 << 30);
  const std::int64_t tokens_max = static_cast<std::int64_t>(o.batch_size_max) *
                                  std::max(o.context_seq_len_max, 1 + o.draft_len_max);
  if (tokens_max > kTokensMax) {
    throw UsageError("generated batches could reach " + std::to_string(tokens_max) +
                     " tokens, above the limit " + std::to_string(kTokensMax));
  }
}

rc::Gen<Scenario> gen_scenario(const GenOptions& options) {
  validate(options);
  return rc::gen::exec([o = options] {
    namespace gen = rc::gen;
    Scenario s;
    s.protocol = o.protocol;
    s.mutant = o.mutant;
    // Picks are ordered so that shrinking simplifies the batch first.
    const std::int32_t total = *gen::inRange<std::int32_t>(1, o.batch_size_max + 1);
    const std::int32_t at_least = o.require_chunked ? 1 : 0;
    const std::int32_t contexts = *gen::inRange<std::int32_t>(at_least, total + 1);
    const std::int32_t chunked = *gen::inRange<std::int32_t>(at_least, contexts + 1);
    const std::int32_t draft_len = *gen::inRange<std::int32_t>(0, o.draft_len_max + 1);
    s.warmups_count = *gen::inRange<std::int32_t>(0, o.warmups_max + 1);
    s.key = GraphKey{total, draft_len};
    s.num_contexts = contexts;
    s.num_chunked_ctx_requests = chunked;
    s.num_generations = total - contexts;
    // Startup capture zeroes the offsets; runtime capture (overlap scheduler,
    // speculative decoding) derives them from the previous iteration.
    const bool runtime =
        draft_len > 0 &&
        (o.capture == CaptureKind::kRuntime ||
         (o.capture == CaptureKind::kAny && *gen::weightedElement<bool>({{1, false}, {3, true}})));

    // One container pick per field (not one pick per request): generation
    // is the hot path of a RapidCheck run.
    const std::int32_t fresh_contexts = contexts - chunked;
    const auto context_seq_lens = *gen::container<std::vector<std::int32_t>>(
        static_cast<std::size_t>(contexts),
        gen::inRange<std::int32_t>(1, o.context_seq_len_max + 1));
    // Non-chunked context requests start at position 0; chunked context and
    // generation requests continue from `past` cached tokens.
    const auto pasts = seeded_values(*gen::inRange<std::uint32_t>(0, 1u << 31),
                                     total - fresh_contexts, o.past_kv_len_max + 1);
    s.seq_lens.clear();
    s.kv_lens.clear();
    s.position_ids.clear();
    for (std::int32_t r = 0; r < total; ++r) {
      const bool context = r < contexts;
      const std::int32_t seq_len = context ? context_seq_lens[static_cast<std::size_t>(r)]
                                           : 1 + draft_len;
      const std::int32_t past =
          r < fresh_contexts ? 0 : pasts[static_cast<std::size_t>(r - fresh_contexts)];
      s.seq_lens.push_back(seq_len);
      s.kv_lens.push_back(past + seq_len);
      for (std::int32_t j = 0; j < seq_len; ++j) s.position_ids.push_back(past + j);
    }
    const std::int32_t tokens = s.num_tokens();
    // Token ids never decide a capture bug: one seed, not one shrinkable per token.
    s.input_ids = seeded_values(*gen::inRange<std::uint32_t>(0, 1u << 31), tokens, o.vocab_size);

    s.previous_pos_id_offsets.assign(static_cast<std::size_t>(tokens - s.num_ctx_tokens()), 0);
    s.previous_kv_lens_offsets.assign(static_cast<std::size_t>(s.kv_offsets_count()), 0);
    if (runtime) {
      // accepted in 0..draft_len per request; new_tokens_lens = accepted + 1.
      const auto accepted = *gen::container<std::vector<std::int32_t>>(
          static_cast<std::size_t>(std::max(s.num_generations, chunked)),
          gen::inRange<std::int32_t>(0, draft_len + 1));
      for (std::int32_t g = 0; g < s.num_generations; ++g) {
        for (std::int32_t j = 0; j <= draft_len; ++j) {
          s.previous_pos_id_offsets[static_cast<std::size_t>(g * (1 + draft_len) + j)] =
              accepted[static_cast<std::size_t>(g)] + 1;
        }
      }
      for (std::int32_t k = 0; k < s.kv_offsets_count(); ++k) {
        s.previous_kv_lens_offsets[static_cast<std::size_t>(k)] =
            accepted[static_cast<std::size_t>(k)] - draft_len;
      }
    }
    // CUDA-graph padding: the last generation rows may be dummies, which have
    // no previous tensor (zero offsets, nothing accepted).
    // At least one real generation request stays: a batch is padded up, never
    // made of dummies alone.
    s.num_dummy_requests =
        s.num_generations > 1 && *gen::resize(100, gen::inRange<std::int32_t>(0, 4)) == 3
            ? *gen::inRange<std::int32_t>(1, s.num_generations)
            : 0;
    const std::int32_t first_dummy = s.num_generations - s.num_dummy_requests;
    for (std::int32_t g = first_dummy; g < s.num_generations; ++g) {
      for (std::int32_t j = 0; j <= draft_len; ++j) {
        s.previous_pos_id_offsets[static_cast<std::size_t>(g * (1 + draft_len) + j)] = 0;
      }
      if (chunked == 0) s.previous_kv_lens_offsets[static_cast<std::size_t>(g)] = 0;
    }
    s.draft_loop = o.draft_loop && draft_len > 0;
    s.num_accepted_tokens =
        s.draft_loop ? seeded_values(*gen::inRange<std::uint32_t>(0, 1u << 31), s.num_generations,
                                     draft_len + 1)
                     : std::vector<std::int32_t>(static_cast<std::size_t>(s.num_generations), 0);
    for (std::int32_t g = first_dummy; g < s.num_generations; ++g) {
      s.num_accepted_tokens[static_cast<std::size_t>(g)] = 0;
    }
    validate(s);
    return s;
  });
}

}  // namespace capcheck
