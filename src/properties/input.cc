// Input properties: postprocess_inverts_preprocess, padding_is_inert.
#include "capcheck/errors.h"
#include "support.h"

namespace capcheck {

using namespace properties_detail;

Verdict postprocess_inverts_preprocess(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "postprocess_inverts_preprocess";
  Instance& instance = subjects.eager(scenario);
  instance.prepare(scenario);
  thread_local SnapshotWindow window;
  if (!window.changed_by(instance, [&] {
        instance.preprocess();
        instance.postprocess();
      })) {
    return pass(kName);
  }
  const SnapshotDifference& diff = window.difference();
  Verdict v = fail(kName, "postprocess(preprocess(inputs)) changed " + changed_text(diff.mismatch),
                   diff.mismatch);
  const std::string writer = instance.explain_change(diff.buffer, diff.mismatch.index);
  if (!writer.empty()) v.notes.push_back(writer);
  return v;
}

Verdict padding_is_inert(Subjects& subjects, const Scenario& scenario) {
  constexpr std::string_view kName = "padding_is_inert";
  // The same batch without its padding dummies (the last generation rows).
  Scenario real = scenario;
  const std::int32_t dummies = scenario.num_dummy_requests;
  const std::int32_t real_generations = scenario.num_generations - dummies;
  const std::int32_t gen_tokens = real_generations * (1 + scenario.key.draft_len);
  const std::int32_t tokens = scenario.num_ctx_tokens() + gen_tokens;
  real.num_dummy_requests = 0;
  real.num_generations = real_generations;
  real.key.batch_size = scenario.num_contexts + real_generations;
  real.seq_lens.resize(static_cast<std::size_t>(real.key.batch_size));
  real.kv_lens.resize(static_cast<std::size_t>(real.key.batch_size));
  real.num_accepted_tokens.resize(static_cast<std::size_t>(real_generations));
  real.input_ids.resize(static_cast<std::size_t>(tokens));
  real.position_ids.resize(static_cast<std::size_t>(tokens));
  real.previous_pos_id_offsets.resize(static_cast<std::size_t>(gen_tokens));
  if (real.num_chunked_ctx_requests == 0) {
    real.previous_kv_lens_offsets.resize(static_cast<std::size_t>(real_generations));
  }
  if (real.key.batch_size == 0) return pass(kName);  // nothing but padding
  validate(real);
  Outputs padded = eager_outputs(subjects, scenario);
  const Outputs unpadded = eager_outputs(subjects, real);
  // The real rows come first (outputs are row-major with one row per token):
  // each padded output keeps only them.
  CAPCHECK_ASSERT(padded.size() == unpadded.size());
  for (std::size_t k = 0; k < padded.size(); ++k) {
    CAPCHECK_ASSERT(padded[k].bytes.size() >= unpadded[k].bytes.size());
    padded[k].bytes.resize(unpadded[k].bytes.size());
    padded[k].shape = unpadded[k].shape;
  }
  if (auto v = compare_outputs(kName,
                               "with " + std::to_string(dummies) +
                                   " padding dummy row(s), the forward",
                               unpadded, padded)) {
    return *v;
  }
  return pass(kName);
}

}  // namespace capcheck
