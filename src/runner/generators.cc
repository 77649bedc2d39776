#include "capcheck/generators.h"

#include <algorithm>
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

// Note [independent picks]: every pick of a scenario has a range fixed by the
// options alone, and the scenario is built from the picks afterwards. A pick
// that depends on another (the context count drawn from 0..batch_size)
// would tie their shrinks together: RapidCheck's gen::exec regenerates every
// pick after one it shrinks, so shrinking the batch size would redraw
// everything after it, lose the failure and be refused, and the batch size
// would stay where the generator first put it. Here RapidCheck shrinks each
// pick on its own (gen::tuple) and the counts are scaled into their ranges,
// rounding up: whether a batch has contexts (chunked ones among them,
// padding dummies) is a pick of its own, and their number a fraction of the
// batch (of its contexts, of its generation rows) that stays at least 1, so
// the batch size shrinks to 1 without losing the chunked context a failure
// needs. A row's context length and accepted
// count are the row's entry of a short list, or past its end a value drawn
// from a seed (seed 0: the smallest, 1 token and 0 accepted), so shrinking
// moves each of the first rows towards its smallest on its own, and all the
// later ones at once. (A list entry per row of the largest batch would
// double the cost of generating a case.)
namespace {

// raw in 0..width as a count in 1..n, rounded up (n >= 1).
std::int32_t share(std::int32_t raw, std::int32_t width, std::int32_t n) {
  const std::int64_t up = (static_cast<std::int64_t>(raw) * n + width - 1) / width;
  return static_cast<std::int32_t>(std::clamp<std::int64_t>(up, 1, n));
}

// Rows with their own pick: the first kListedRows of a batch at most.
constexpr std::int32_t kListedRows = 8;

// Row `row`'s value: its list entry, else `lo` + the tail's value for it.
std::int32_t row_value(const std::vector<std::int32_t>& list, const std::vector<std::int32_t>& tail,
                       std::int32_t row, std::int32_t lo) {
  const auto r = static_cast<std::size_t>(row);
  return r < list.size() ? list[r] : lo + tail[r];
}

struct Picks {
  std::int32_t total;
  std::int32_t has_contexts;  // 0 or 1
  std::int32_t contexts;
  std::int32_t has_chunked;  // 0 or 1
  std::int32_t chunked, draft_len, warmups;
  std::int32_t runtime;  // 0..3: 1 to 3 a runtime capture (under CaptureKind::kAny)
  std::int32_t padded, dummies;
  std::vector<std::int32_t> context_seq_lens, accepted;
  std::uint32_t seq_len_tail_seed, accepted_tail_seed, past_seed, id_seed, draft_accept_seed;
};

Scenario build_scenario(const GenOptions& o, const Picks& p) {
  const std::int32_t width = o.batch_size_max;
  Scenario s;
  s.protocol = o.protocol;
  s.mutant = o.mutant;
  const std::int32_t total = p.total;
  const std::int32_t contexts =
      o.require_chunked || p.has_contexts != 0 ? share(p.contexts, width, total) : 0;
  const std::int32_t chunked =
      contexts > 0 && (o.require_chunked || p.has_chunked != 0) ? share(p.chunked, width, contexts) : 0;
  const std::int32_t draft_len = p.draft_len;
  s.warmups_count = p.warmups;
  s.key = GraphKey{total, draft_len};
  s.num_contexts = contexts;
  s.num_chunked_ctx_requests = chunked;
  s.num_generations = total - contexts;
  // Startup capture zeroes the offsets; runtime capture (overlap scheduler,
  // speculative decoding) derives them from the previous iteration.
  const bool runtime = draft_len > 0 && (o.capture == CaptureKind::kRuntime ||
                                         (o.capture == CaptureKind::kAny && p.runtime != 0));
  const std::int32_t fresh_contexts = contexts - chunked;
  // Non-chunked context requests start at position 0; chunked context and
  // generation requests continue from `past` cached tokens.
  const auto pasts = seeded_values(p.past_seed, total - fresh_contexts, o.past_kv_len_max + 1);
  s.seq_lens.clear();  // a default Scenario holds one request
  s.kv_lens.clear();
  s.position_ids.clear();
  const auto seq_len_tail = seeded_values(p.seq_len_tail_seed, contexts, o.context_seq_len_max);
  for (std::int32_t r = 0; r < total; ++r) {
    const bool context = r < contexts;
    const std::int32_t seq_len =
        context ? row_value(p.context_seq_lens, seq_len_tail, r, 1) : 1 + draft_len;
    const std::int32_t past =
        r < fresh_contexts ? 0 : pasts[static_cast<std::size_t>(r - fresh_contexts)];
    s.seq_lens.push_back(seq_len);
    s.kv_lens.push_back(past + seq_len);
    for (std::int32_t j = 0; j < seq_len; ++j) s.position_ids.push_back(past + j);
  }
  const std::int32_t tokens = s.num_tokens();
  // Token ids never decide a capture bug: one seed, not one shrinkable per token.
  s.input_ids = seeded_values(p.id_seed, tokens, o.vocab_size);
  s.previous_pos_id_offsets.assign(static_cast<std::size_t>(tokens - s.num_ctx_tokens()), 0);
  s.previous_kv_lens_offsets.assign(static_cast<std::size_t>(s.kv_offsets_count()), 0);
  if (runtime) {
    // accepted in 0..draft_len per request; new_tokens_lens = accepted + 1.
    const std::int32_t rows = std::max(s.num_generations, s.kv_offsets_count());
    const auto tail = seeded_values(p.accepted_tail_seed, rows, draft_len + 1);
    auto accepted = [&](std::int32_t row) {
      return std::min(row_value(p.accepted, tail, row, 0), draft_len);
    };
    for (std::int32_t g = 0; g < s.num_generations; ++g) {
      for (std::int32_t j = 0; j <= draft_len; ++j) {
        s.previous_pos_id_offsets[static_cast<std::size_t>(g * (1 + draft_len) + j)] =
            accepted(g) + 1;
      }
    }
    for (std::int32_t k = 0; k < s.kv_offsets_count(); ++k) {
      s.previous_kv_lens_offsets[static_cast<std::size_t>(k)] = accepted(k) - draft_len;
    }
  }
  // CUDA-graph padding: the last generation rows may be dummies, which have
  // no previous tensor (zero offsets, nothing accepted). At least one real
  // generation request stays: a batch is padded up, never made of dummies alone.
  s.num_dummy_requests = s.num_generations > 1 && p.padded == 3
                             ? share(p.dummies, width, s.num_generations - 1)
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
      s.draft_loop ? seeded_values(p.draft_accept_seed, s.num_generations, draft_len + 1)
                   : std::vector<std::int32_t>(static_cast<std::size_t>(s.num_generations), 0);
  for (std::int32_t g = first_dummy; g < s.num_generations; ++g) {
    s.num_accepted_tokens[static_cast<std::size_t>(g)] = 0;
  }
  validate(s);
  return s;
}

}  // namespace

rc::Gen<Scenario> gen_scenario(const GenOptions& options) {
  validate(options);
  namespace gen = rc::gen;
  const GenOptions o = options;
  const std::int32_t width = o.batch_size_max;
  const auto fraction = gen::inRange<std::int32_t>(0, width + 1);
  const auto seed = gen::inRange<std::uint32_t>(0, 1u << 31);
  // Per-row lists of at most kListedRows entries (their length is a pick
  // too: shrinking drops rows' entries from the end first).
  auto rows = [](auto element) {
    return gen::resize(kListedRows, gen::container<std::vector<std::int32_t>>(element));
  };
  // Choices that shrink to their first (simpler) outcome: gen::weightedElement
  // never shrinks, gen::element narrows with the size.
  auto choice = [](std::int32_t outcomes) {
    return gen::resize(100, gen::inRange<std::int32_t>(0, outcomes));
  };
  const auto coin = choice(2);
  auto shape = gen::tuple(gen::inRange<std::int32_t>(1, o.batch_size_max + 1), coin, fraction,
                          coin, fraction,
                          gen::inRange<std::int32_t>(0, o.draft_len_max + 1),
                          gen::inRange<std::int32_t>(0, o.warmups_max + 1),
                          choice(4), choice(4), fraction);
  auto lists = gen::tuple(rows(gen::inRange<std::int32_t>(1, o.context_seq_len_max + 1)),
                          rows(gen::inRange<std::int32_t>(0, o.draft_len_max + 1)), seed, seed,
                          seed, seed, seed);
  return gen::map(gen::pair(std::move(shape), std::move(lists)), [o](const auto& picks) {
    const auto& [total, has_contexts, contexts, has_chunked, chunked, draft_len, warmups, runtime,
                 padded, dummies] = picks.first;
    const auto& [context_seq_lens, accepted, seq_len_tail_seed, accepted_tail_seed, past_seed,
                 id_seed, draft_accept_seed] = picks.second;
    return build_scenario(o, Picks{total, has_contexts, contexts, has_chunked, chunked, draft_len,
                                   warmups, runtime, padded,
                                   dummies, context_seq_lens, accepted, seq_len_tail_seed,
                                   accepted_tail_seed, past_seed, id_seed, draft_accept_seed});
  });
}

}  // namespace capcheck
