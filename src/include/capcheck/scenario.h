// The scenario: a plain, serializable value describing the engine state at the
// moment one CUDA-graph key is captured and replayed (docs/architecture.md).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace capcheck {

/// How the subject brackets warmups and capture with `_postprocess_inputs`.
enum class Protocol : std::uint8_t {
  kReference = 0,        // postprocess after each warmup only: correct
  kPreFix = 1,           // no postprocess at all: TensorRT-LLM before PR #7373
  kSeedPr = 2,           // postprocess after each warmup and after capture: PR #7373
  kSnapshotRestore = 3,  // PR #7373 plus a kv_lens snapshot restored after
                         // capture (fix pattern from the review of PR #7100)
};
inline constexpr int kProtocolCount = 4;

/// A switchable defect of the built-in subject (the mutants of docs/properties.md).
enum class Mutant : std::uint8_t {
  kNone = 0,
  kChunkedBranchAsymmetry = 1,  // postprocess ignores the chunked-context branch
  kPartialStaticCopy = 2,       // replay copies one token fewer into the static buffers
  kPaddedRowsNotInert = 3,      // kv offsets gathered as if padding dummies came first
  kReplayWithoutPrepare = 4,    // a replay of an existing graph skips the kv_lens rewrite
  kStaleOffsets = 5,            // a replay of an existing graph re-reads the capture's offsets
  kCacheKeyWithoutDraftLen = 6, // the graph cache keys on batch_size only
  kCaptureOverrideLeaks = 7,    // a capture-only switch stays on for later eager forwards
  kOffsetMisalignment = 8,      // position offsets taken as if padding dummies came first
  kHostValueBaked = 9,          // the kv update's row count is the batch's real count, baked
  kReallocAfterCapture = 10,    // kv_lens is reallocated when a later batch outgrows it
  kPoolOutputAlias = 11,        // a graph's output block goes back to the shared pool
};
inline constexpr int kMutantCount = 12;

/// Stable command-line / JSON names ("seed-pr", "chunked-branch-asymmetry", ...).
std::string_view protocol_name(Protocol protocol);
std::string_view mutant_name(Mutant mutant);
/// Parse a name; throws UsageError listing the allowed names.
Protocol parse_protocol(std::string_view name);
Mutant parse_mutant(std::string_view name);

/// Limits on every scenario field. Anything larger is rejected by validate().
inline constexpr std::int32_t kBatchSizeMax = 256;
inline constexpr std::int32_t kDraftLenMax = 8;
inline constexpr std::int32_t kWarmupsMax = 16;
inline constexpr std::int32_t kSeqLenMax = 4096;
inline constexpr std::int32_t kTokensMax = 16384;
inline constexpr std::int32_t kKvLenMax = 1 << 20;
inline constexpr std::int32_t kOffsetMagnitudeMax = 1 << 16;
inline constexpr std::int32_t kPositionMagnitudeMax = 1 << 20;

/// The CUDA graph key of TensorRT-LLM's CUDAGraphRunner.
struct GraphKey {
  std::int32_t batch_size = 1;
  std::int32_t draft_len = 0;
  friend bool operator==(const GraphKey& a, const GraphKey& b) {
    return a.batch_size == b.batch_size && a.draft_len == b.draft_len;
  }
};

/// One capture-and-replay case. Requests are ordered as in TensorRT-LLM's
/// attention metadata: context requests first (the last
/// `num_chunked_ctx_requests` of them are chunked), then generation requests.
struct Scenario {
  Protocol protocol = Protocol::kReference;
  Mutant mutant = Mutant::kNone;
  GraphKey key;
  std::int32_t warmups_count = 0;
  std::int32_t num_contexts = 0;
  std::int32_t num_chunked_ctx_requests = 0;
  std::int32_t num_generations = 1;
  /// Tokens of each request in this iteration; generation requests have 1 + draft_len.
  std::vector<std::int32_t> seq_lens{1};
  /// KV-cache length of each request, this iteration's tokens included.
  std::vector<std::int32_t> kv_lens{1};
  /// Per generation token: added to its position id by `_preprocess_inputs`.
  std::vector<std::int32_t> previous_pos_id_offsets{0};
  /// Per chunked context request if there are any, else per generation request.
  std::vector<std::int32_t> previous_kv_lens_offsets{0};
  /// Flat token ids, `num_tokens()` long.
  std::vector<std::int32_t> input_ids{0};
  /// The single row of the `[1, num_tokens]` position-id tensor.
  std::vector<std::int32_t> position_ids{0};
  /// One-model speculative decoding's draft loop runs inside the forward and
  /// moves kv_lens in place (step 0: generation rows -= draft_len - accepted,
  /// context rows += 1; each later draft step: every row += 1). Needs draft_len >= 1.
  bool draft_loop = false;
  /// Per generation request: draft tokens accepted this iteration (0..draft_len),
  /// read by the draft loop from device memory.
  std::vector<std::int32_t> num_accepted_tokens{0};
  /// The last `num_dummy_requests` generation requests are CUDA-graph padding
  /// dummies (TensorRT-LLM's shared dummy request): no previous tensor, so
  /// their offsets and accepted counts are zero.
  std::int32_t num_dummy_requests = 0;

  std::int32_t num_seqs() const { return num_contexts + num_generations; }
  std::int32_t num_ctx_tokens() const;
  std::int32_t num_tokens() const;
  /// Length `previous_kv_lens_offsets` must have (the branch preprocess takes).
  std::int32_t kv_offsets_count() const {
    return num_chunked_ctx_requests > 0 ? num_chunked_ctx_requests : num_generations;
  }
  /// True when every previous-iteration offset is zero (startup capture).
  bool offsets_are_zero() const;

  friend bool operator==(const Scenario& a, const Scenario& b);
  friend bool operator!=(const Scenario& a, const Scenario& b) { return !(a == b); }
};

/// Throws UsageError naming the first inconsistent field, its value and what is allowed.
void validate(const Scenario& scenario);

/// The fields of a Scenario a subject reads (subject_registry.h: a subject
/// declares them; reports print only those). Bits of ScenarioFields.
enum ScenarioField : std::uint32_t {
  kFieldProtocol = 1u << 0,      // protocol
  kFieldMutant = 1u << 1,        // mutant
  kFieldKey = 1u << 2,           // key (batch_size, draft_len)
  kFieldWarmups = 1u << 3,       // warmups_count
  kFieldComposition = 1u << 4,   // num_contexts, num_chunked_ctx_requests, num_generations
  kFieldSeqLens = 1u << 5,       // seq_lens
  kFieldKvLens = 1u << 6,        // kv_lens
  kFieldPosOffsets = 1u << 7,    // previous_pos_id_offsets
  kFieldKvOffsets = 1u << 8,     // previous_kv_lens_offsets
  kFieldInputIds = 1u << 9,      // input_ids
  kFieldPositionIds = 1u << 10,  // position_ids
  kFieldDraftLoop = 1u << 11,    // draft_loop, num_accepted_tokens
  kFieldDummies = 1u << 12,      // num_dummy_requests
};
using ScenarioFields = std::uint32_t;
inline constexpr ScenarioFields kAllScenarioFields = (1u << 13) - 1;
/// "key, warmups, seq_lens": the names of the fields in `fields`.
std::string scenario_field_names(ScenarioFields fields);

/// A one-line human summary: key, composition, warmups, protocol, offsets;
/// only the fields in `fields` (the key and the token count always).
std::string summarize(const Scenario& scenario, ScenarioFields fields = kAllScenarioFields);

/// A dense index of a graph key (the built-in subjects' graphs by key).
std::int64_t key_index(const GraphKey& key);
/// The index the built-in subjects' graph cache files the scenario's graph
/// under: key_index, or under the cache-key-without-draft-len mutant the
/// batch size alone (two draft lengths collide).
std::int64_t graph_cache_index(const Scenario& scenario);
/// The UsageError of a replay of `key` before it was captured.
[[noreturn]] void throw_replay_before_capture(const GraphKey& key);
/// Tokens a replay copies into the static inputs: all of them, one fewer
/// under the partial-static-copy mutant.
std::int32_t replay_copied_tokens(const Scenario& scenario);

/// The request of each token, in token order (the engine's `seq_ids`).
std::vector<std::int32_t> token_sequences(const Scenario& scenario);
/// Per generation request: draft tokens rejected this iteration (draft_len - accepted).
std::vector<std::int32_t> rejected_draft_tokens(const Scenario& scenario);

/// `count` values in [0, bound) derived from one seed; seed 0 gives all zeros.
/// Generators and fuzzers fill fields that never decide a capture bug (token
/// ids, past lengths) this way: one choice instead of one per element, and
/// shrinking the seed to 0 shrinks every value at once.
std::vector<std::int32_t> seeded_values(std::uint32_t seed, std::int32_t count, std::int32_t bound);

/// Writes summarize(scenario) (so test frameworks print scenarios readably).
std::ostream& operator<<(std::ostream& out, const Scenario& scenario);

}  // namespace capcheck
