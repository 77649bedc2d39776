// The registry of properties, by stable name.
#include "capcheck/errors.h"
#include "capcheck/properties.h"

namespace capcheck {

const std::vector<PropertyInfo>& all_properties() {
  static const std::vector<PropertyInfo> properties = {
      {"capture_preserves_inputs",
       "every persistent buffer is bitwise equal before and after capture (warmups included)",
       &capture_preserves_inputs},
      {"first_replay_matches_eager",
       "the replay right after capture equals an eager forward of the same inputs on a fresh copy",
       &first_replay_matches_eager},
      {"warmup_count_invariant",
       "buffers after capture and the first replay do not depend on the number of warmups",
       &warmup_count_invariant},
      {"postprocess_inverts_preprocess",
       "postprocess after preprocess is the identity on every persistent buffer, on every branch",
       &postprocess_inverts_preprocess},
      {"replays_match_eager",
       "every replay over follow-up iterations (re-prepare, replay) equals an eager forward",
       &replays_match_eager},
      {"replays_track_new_offsets",
       "every replay over follow-up iterations with new accepted counts and the offsets derived "
       "from them (the overlap scheduler's) equals an eager forward",
       &replays_track_new_offsets},
      {"bucket_reuse_matches_eager",
       "a graph captured with one real request fewer (padded into the same key) and replayed "
       "on this batch equals an eager forward of it",
       &bucket_reuse_matches_eager},
      {"padding_is_inert", "padding dummy rows never change the real rows' outputs",
       &padding_is_inert},
      {"static_inputs_fully_copied",
       "a replay's output does not depend on what the static input buffers held before it",
       &static_inputs_fully_copied},
      {"graph_cache_keys_distinct",
       "two keys that differ in draft_len only, captured one after the other, each replay "
       "equal to an eager forward (the graph cache keys on every dimension)",
       &graph_cache_keys_distinct},
      {"capture_state_does_not_leak",
       "after a capture, an eager forward and a later replay on the same instance equal eager "
       "forwards on a fresh one (nothing set only for capture stays set)",
       &capture_state_does_not_leak},
      {"graph_outputs_survive_other_replays",
       "what a replay returned is unchanged by a later replay of another key's graph (shared "
       "pools reuse only memory nothing holds)",
       &graph_outputs_survive_other_replays},
      {"backends_agree",
       "every buffer and output is bitwise identical across backends after each phase (each "
       "warmup count, capture, first and later replays, eager)",
       &backends_agree},
      {"canary_forward_never_changes_kv_lens",
       "CANARY (must fail): an eager forward leaves every persistent buffer unchanged",
       &canary_forward_never_changes_kv_lens, /*canary=*/true},
  };
  return properties;
}

const PropertyInfo& find_property(std::string_view name) {
  std::string known;
  for (const auto& p : all_properties()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + std::string(p.name);
  }
  throw UsageError("unknown property " + quote_input(name) + "; known: " + known);
}

}  // namespace capcheck
