#include "capcheck/scenario.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "capcheck/errors.h"
#include "capcheck/detail/model.h"

namespace capcheck {

namespace {

constexpr std::string_view kProtocolNames[kProtocolCount] = {"reference", "pre-fix", "seed-pr",
                                                             "snapshot-restore"};
constexpr std::string_view kMutantNames[kMutantCount] = {
    "none", "chunked-branch-asymmetry", "partial-static-copy", "padded-rows-not-inert",
    "replay-without-prepare", "stale-offsets",
    "cache-key-without-draft-len", "capture-override-leaks", "offset-misalignment",
    "host-value-baked", "realloc-after-capture", "pool-output-alias"};

template <std::size_t N>
std::string join_names(const std::string_view (&names)[N]) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i) out += ", ";
    out += names[i];
  }
  return out;
}

[[noreturn]] void reject(const std::string& field, const std::string& problem) {
  throw UsageError("invalid scenario: " + field + ": " + problem);
}

void check_range(const char* field, std::int64_t value, std::int64_t lo, std::int64_t hi) {
  if (value < lo || value > hi) {
    reject(field, "is " + std::to_string(value) + ", allowed " + std::to_string(lo) + ".." +
                      std::to_string(hi));
  }
}

void check_size(const char* field, std::size_t size, std::int64_t expected, const char* why) {
  if (static_cast<std::int64_t>(size) != expected) {
    reject(field, "has " + std::to_string(size) + " entries, expected " + std::to_string(expected) +
                      " (" + why + ")");
  }
}

void check_elements(const char* field, const std::vector<std::int32_t>& values, std::int64_t lo,
                    std::int64_t hi) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] < lo || values[i] > hi) {
      reject(std::string(field) + "[" + std::to_string(i) + "]",
             "is " + std::to_string(values[i]) + ", allowed " + std::to_string(lo) + ".." +
                 std::to_string(hi));
    }
  }
}

}  // namespace

std::string_view protocol_name(Protocol protocol) {
  return kProtocolNames[static_cast<int>(protocol)];
}

std::string_view mutant_name(Mutant mutant) { return kMutantNames[static_cast<int>(mutant)]; }

Protocol parse_protocol(std::string_view name) {
  for (int i = 0; i < kProtocolCount; ++i) {
    if (kProtocolNames[i] == name) return static_cast<Protocol>(i);
  }
  throw UsageError("unknown protocol " + quote_input(name) + "; allowed: " +
                   join_names(kProtocolNames));
}

Mutant parse_mutant(std::string_view name) {
  for (int i = 0; i < kMutantCount; ++i) {
    if (kMutantNames[i] == name) return static_cast<Mutant>(i);
  }
  throw UsageError("unknown mutant " + quote_input(name) + "; allowed: " +
                   join_names(kMutantNames));
}

std::int32_t Scenario::num_ctx_tokens() const {
  const auto count = std::min<std::size_t>(seq_lens.size(), static_cast<std::size_t>(num_contexts));
  return std::accumulate(seq_lens.begin(), seq_lens.begin() + count, 0);
}

std::int32_t Scenario::num_tokens() const {
  return std::accumulate(seq_lens.begin(), seq_lens.end(), 0);
}

bool Scenario::offsets_are_zero() const {
  const auto zero = [](std::int32_t v) { return v == 0; };
  return std::all_of(previous_pos_id_offsets.begin(), previous_pos_id_offsets.end(), zero) &&
         std::all_of(previous_kv_lens_offsets.begin(), previous_kv_lens_offsets.end(), zero);
}

bool operator==(const Scenario& a, const Scenario& b) {
  return a.protocol == b.protocol && a.mutant == b.mutant && a.key == b.key &&
         a.warmups_count == b.warmups_count && a.num_contexts == b.num_contexts &&
         a.num_chunked_ctx_requests == b.num_chunked_ctx_requests &&
         a.num_generations == b.num_generations && a.seq_lens == b.seq_lens &&
         a.kv_lens == b.kv_lens && a.previous_pos_id_offsets == b.previous_pos_id_offsets &&
         a.previous_kv_lens_offsets == b.previous_kv_lens_offsets && a.input_ids == b.input_ids &&
         a.position_ids == b.position_ids && a.draft_loop == b.draft_loop &&
         a.num_accepted_tokens == b.num_accepted_tokens &&
         a.num_dummy_requests == b.num_dummy_requests;
}

std::int64_t key_index(const GraphKey& key) {
  return static_cast<std::int64_t>(key.batch_size) * (kDraftLenMax + 1) + key.draft_len;
}

std::int64_t graph_cache_index(const Scenario& s) {
  return s.mutant == Mutant::kCacheKeyWithoutDraftLen ? key_index(GraphKey{s.key.batch_size, 0})
                                                       : key_index(s.key);
}

void throw_replay_before_capture(const GraphKey& key) {
  throw UsageError("replay of key (batch_size=" + std::to_string(key.batch_size) +
                   ", draft_len=" + std::to_string(key.draft_len) + ") before it was captured");
}

std::int32_t replay_copied_tokens(const Scenario& s) {
  return s.mutant == Mutant::kPartialStaticCopy ? s.num_tokens() - 1 : s.num_tokens();
}

std::vector<std::int32_t> token_sequences(const Scenario& s) {
  std::vector<std::int32_t> sequences;
  sequences.reserve(static_cast<std::size_t>(s.num_tokens()));
  for (std::int32_t seq = 0; seq < s.num_seqs(); ++seq) {
    sequences.insert(sequences.end(), static_cast<std::size_t>(s.seq_lens[static_cast<std::size_t>(seq)]), seq);
  }
  return sequences;
}

std::vector<std::int32_t> rejected_draft_tokens(const Scenario& s) {
  std::vector<std::int32_t> rejected(static_cast<std::size_t>(s.num_generations));
  for (std::size_t g = 0; g < rejected.size(); ++g) rejected[g] = s.key.draft_len - s.num_accepted_tokens[g];
  return rejected;
}

void validate(const Scenario& s) {
  if (static_cast<int>(s.protocol) >= kProtocolCount) reject("protocol", "unknown value");
  if (static_cast<int>(s.mutant) >= kMutantCount) reject("mutant", "unknown value");
  check_range("batch_size", s.key.batch_size, 1, kBatchSizeMax);
  check_range("draft_len", s.key.draft_len, 0, kDraftLenMax);
  check_range("warmups", s.warmups_count, 0, kWarmupsMax);
  check_range("num_contexts", s.num_contexts, 0, kBatchSizeMax);
  check_range("num_generations", s.num_generations, 0, kBatchSizeMax);
  check_range("num_chunked_ctx_requests", s.num_chunked_ctx_requests, 0, s.num_contexts);
  if (s.num_seqs() != s.key.batch_size) {
    reject("batch_size", "is " + std::to_string(s.key.batch_size) +
                             " but num_contexts + num_generations = " +
                             std::to_string(s.num_seqs()) + "; they must be equal");
  }
  check_size("seq_lens", s.seq_lens.size(), s.num_seqs(), "one per request");
  check_size("kv_lens", s.kv_lens.size(), s.num_seqs(), "one per request");
  for (std::int32_t i = 0; i < s.num_seqs(); ++i) {
    const std::string field = "seq_lens[" + std::to_string(i) + "]";
    if (i < s.num_contexts) {
      check_range(field.c_str(), s.seq_lens[i], 1, kSeqLenMax);
    } else if (s.seq_lens[i] != 1 + s.key.draft_len) {
      reject(field, "is " + std::to_string(s.seq_lens[i]) +
                        " for a generation request; it must be 1 + draft_len = " +
                        std::to_string(1 + s.key.draft_len));
    }
  }
  check_elements("kv_lens", s.kv_lens, 0, kKvLenMax);
  std::int64_t tokens = 0;
  for (auto len : s.seq_lens) tokens += len;
  check_range("total tokens (sum of seq_lens)", tokens, 1, kTokensMax);
  check_size("input_ids", s.input_ids.size(), tokens, "one per token: sum of seq_lens");
  check_size("position_ids", s.position_ids.size(), tokens, "one per token: sum of seq_lens");
  check_size("previous_pos_id_offsets", s.previous_pos_id_offsets.size(),
             tokens - s.num_ctx_tokens(), "one per generation token");
  check_size("previous_kv_lens_offsets", s.previous_kv_lens_offsets.size(), s.kv_offsets_count(),
             s.num_chunked_ctx_requests > 0 ? "one per chunked context request"
                                            : "one per generation request");
  check_elements("previous_pos_id_offsets", s.previous_pos_id_offsets, -kOffsetMagnitudeMax,
                 kOffsetMagnitudeMax);
  check_elements("previous_kv_lens_offsets", s.previous_kv_lens_offsets, -kOffsetMagnitudeMax,
                 kOffsetMagnitudeMax);
  check_elements("position_ids", s.position_ids, -kPositionMagnitudeMax, kPositionMagnitudeMax);
  check_size("num_accepted_tokens", s.num_accepted_tokens.size(), s.num_generations,
             "one per generation request");
  check_elements("num_accepted_tokens", s.num_accepted_tokens, 0, s.key.draft_len);
  if (s.draft_loop && s.key.draft_len < 1) {
    reject("draft_loop", "is on but draft_len is 0; the draft loop needs speculative decoding "
                         "(draft_len >= 1)");
  }
  check_range("num_dummy_requests", s.num_dummy_requests, 0, s.num_generations);
  // Padding dummies have no previous tensor: zero offsets, nothing accepted.
  const std::int32_t first_dummy = s.num_generations - s.num_dummy_requests;
  for (std::int32_t g = first_dummy; g < s.num_generations; ++g) {
    const std::string row = " of padding dummy generation request " + std::to_string(g);
    if (s.num_accepted_tokens[static_cast<std::size_t>(g)] != 0) {
      reject("num_accepted_tokens[" + std::to_string(g) + "]", "must be 0" + row);
    }
    for (std::int32_t j = 0; j <= s.key.draft_len; ++j) {
      const auto t = static_cast<std::size_t>(g * (1 + s.key.draft_len) + j);
      if (s.previous_pos_id_offsets[t] != 0) {
        reject("previous_pos_id_offsets[" + std::to_string(t) + "]", "must be 0" + row);
      }
    }
    if (s.num_chunked_ctx_requests == 0 && s.previous_kv_lens_offsets[static_cast<std::size_t>(g)] != 0) {
      reject("previous_kv_lens_offsets[" + std::to_string(g) + "]", "must be 0" + row);
    }
  }
}

namespace {
std::string list(const std::vector<std::int32_t>& values, std::size_t shown_max = 8) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < values.size() && i < shown_max; ++i) out << (i ? "," : "") << values[i];
  if (values.size() > shown_max) out << ",...(" << values.size() << ")";
  out << ']';
  return out.str();
}
}  // namespace

std::string scenario_field_names(ScenarioFields fields) {
  static constexpr std::pair<ScenarioField, const char*> kNames[] = {
      {kFieldProtocol, "protocol"},        {kFieldMutant, "mutant"},
      {kFieldKey, "key"},                  {kFieldWarmups, "warmups"},
      {kFieldComposition, "composition"},  {kFieldSeqLens, "seq_lens"},
      {kFieldKvLens, "kv_lens"},           {kFieldPosOffsets, "previous_pos_id_offsets"},
      {kFieldKvOffsets, "previous_kv_lens_offsets"}, {kFieldInputIds, "input_ids"},
      {kFieldPositionIds, "position_ids"}, {kFieldDraftLoop, "draft_loop"},
      {kFieldDummies, "dummies"},
  };
  std::string text;
  for (const auto& [field, name] : kNames) {
    if (fields & field) text += (text.empty() ? "" : ", ") + std::string(name);
  }
  return text;
}

std::string summarize(const Scenario& s, ScenarioFields f) {
  std::ostringstream out;
  out << "key=(batch_size=" << s.key.batch_size << ", draft_len=" << s.key.draft_len << ")";
  if (f & kFieldWarmups) out << " warmups=" << s.warmups_count;
  if (f & kFieldProtocol) out << " protocol=" << protocol_name(s.protocol);
  if ((f & kFieldMutant) && s.mutant != Mutant::kNone) out << " mutant=" << mutant_name(s.mutant);
  if ((f & kFieldDraftLoop) && s.draft_loop) {
    out << " draft_loop=on accepted=" << list(s.num_accepted_tokens);
  }
  if ((f & kFieldDummies) && s.num_dummy_requests > 0) out << " dummies=" << s.num_dummy_requests;
  if (f & kFieldComposition) {
    out << " requests: " << s.num_contexts << " context (" << s.num_chunked_ctx_requests
        << " chunked), " << s.num_generations << " generation;";
  }
  out << " tokens=" << s.num_tokens();
  if (f & kFieldSeqLens) out << " seq_lens=" << list(s.seq_lens);
  if (f & kFieldKvLens) out << " kv_lens=" << list(s.kv_lens);
  if (f & kFieldPositionIds && !(f & kFieldPosOffsets)) out << " position_ids=" << list(s.position_ids);
  if (f & kFieldPosOffsets) out << " previous_pos_id_offsets=" << list(s.previous_pos_id_offsets);
  if (f & kFieldKvOffsets) out << " previous_kv_lens_offsets=" << list(s.previous_kv_lens_offsets);
  return out.str();
}

std::vector<std::int32_t> seeded_values(std::uint32_t seed, std::int32_t count, std::int32_t bound) {
  CAPCHECK_ASSERT(count >= 0);
  CAPCHECK_ASSERT(bound >= 1);
  std::vector<std::int32_t> values(static_cast<std::size_t>(count), 0);
  if (seed == 0) return values;
  for (std::int32_t i = 0; i < count; ++i) {
    const auto mixed = static_cast<std::uint32_t>(model_mix(static_cast<std::int32_t>(seed), i, 0));
    values[static_cast<std::size_t>(i)] =
        static_cast<std::int32_t>(mixed % static_cast<std::uint32_t>(bound));
  }
  return values;
}

std::ostream& operator<<(std::ostream& out, const Scenario& scenario) {
  return out << summarize(scenario);
}

}  // namespace capcheck
