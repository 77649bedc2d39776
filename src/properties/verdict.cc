// Verdicts: building, comparing, formatting; what every family shares.
#include <algorithm>
#include <limits>
#include <sstream>

#include "capcheck/errors.h"
#include "support.h"

namespace capcheck {

namespace properties_detail {

Verdict pass(std::string_view name) {
  Verdict v;
  v.property = std::string(name);
  return v;
}

Verdict fail(std::string_view name, std::string message, std::optional<Mismatch> mismatch) {
  Verdict v;
  v.passed = false;
  v.property = std::string(name);
  v.message = std::move(message);
  v.mismatch = std::move(mismatch);
  return v;
}

std::optional<Verdict> compare_outputs(std::string_view name, const std::string& what,
                                       const Outputs& expected, const Outputs& actual) {
  SnapshotDifference diff;
  if (!first_difference(expected, actual, &diff)) return std::nullopt;
  const Mismatch& m = diff.mismatch;
  return fail(name, what + " computed " + m.location + " = " + m.actual + " where " + m.expected +
                        " is expected",
              m);
}

std::string changed_text(const Mismatch& m) {
  return m.location + " from " + m.expected + " to " + m.actual;
}

Outputs eager_outputs(Subjects& subjects, const Scenario& scenario) {
  Instance& eager = subjects.eager(scenario);
  eager.prepare(scenario);
  Outputs out;
  eager.forward_eager(out);
  return out;
}

namespace {
// `value + step` when that stays within [.., max], otherwise `value - step`:
// a follow-up of a scenario at a documented limit is still a valid scenario.
std::int32_t step_within(std::int32_t value, std::int32_t step, std::int32_t max) {
  return value <= max - step ? value + step : value - step;
}
}  // namespace

Scenario follow_up(const Scenario& s, std::int32_t i) {
  CAPCHECK_ASSERT(i >= 0 && i < 64);
  Scenario next = s;
  if (i == 0) return next;  // follow-up 0 is the scenario itself
  // New token ids (an xor stays in int32 for any id and changes every one);
  // positions and KV lengths move on by i, or back by i at their limits.
  for (auto& id : next.input_ids) id ^= 7919 * i;
  for (auto& position : next.position_ids) position = step_within(position, i, kPositionMagnitudeMax);
  for (auto& kv : next.kv_lens) kv = step_within(kv, i, kKvLenMax);
  return next;
}

Scenario follow_up_with_new_offsets(const Scenario& s, std::int32_t i) {
  Scenario next = follow_up(s, i);
  const std::int32_t d = s.key.draft_len;
  if (i == 0 || d == 0) return next;
  // A subject's own generator may leave the offset fields out (the subject
  // does not read them): nothing to derive.
  const bool shaped =
      s.previous_pos_id_offsets.size() == static_cast<std::size_t>(s.num_generations * (1 + d)) &&
      s.previous_kv_lens_offsets.size() == static_cast<std::size_t>(s.kv_offsets_count()) &&
      s.num_accepted_tokens.size() == static_cast<std::size_t>(s.num_generations) &&
      s.num_dummy_requests >= 0 && s.num_dummy_requests <= s.num_generations;
  if (!shaped) return next;
  // The number accepted by request r in the previous iteration: moves on
  // with i, differs between neighbours, always in 0..draft_len.
  auto accepted = [&](std::int32_t r) { return (i * (r + 2) + r) % (d + 1); };
  const std::int32_t real = s.num_generations - s.num_dummy_requests;
  for (std::int32_t g = 0; g < s.num_generations; ++g) {
    const std::int32_t offset = g < real ? accepted(g) + 1 : 0;
    for (std::int32_t j = 0; j <= d; ++j) {
      next.previous_pos_id_offsets[static_cast<std::size_t>(g * (1 + d) + j)] = offset;
    }
    if (s.draft_loop) next.num_accepted_tokens[static_cast<std::size_t>(g)] = g < real ? accepted(g) : 0;
  }
  for (std::int32_t k = 0; k < s.kv_offsets_count(); ++k) {
    const bool dummy = s.num_chunked_ctx_requests == 0 && k >= real;
    next.previous_kv_lens_offsets[static_cast<std::size_t>(k)] = dummy ? 0 : accepted(k) - d;
  }
  return next;
}

bool with_other_draft_len(const Scenario& s, Scenario* out) {
  if (s.num_generations == 0) return false;
  try {
    validate(s);  // a subject's own generator may leave fields out: nothing to vary
  } catch (const UsageError&) {
    return false;
  }
  const std::int32_t d = s.key.draft_len;
  const bool room = s.num_tokens() + s.num_generations <= kTokensMax;
  const std::int32_t e = d < kDraftLenMax && room ? d + 1 : d - 1;
  if (e < 0) return false;
  Scenario o = s;
  o.key.draft_len = e;
  o.input_ids.assign(s.input_ids.begin(), s.input_ids.begin() + s.num_ctx_tokens());
  o.position_ids.assign(s.position_ids.begin(), s.position_ids.begin() + s.num_ctx_tokens());
  o.previous_pos_id_offsets.clear();
  for (std::int32_t g = 0; g < s.num_generations; ++g) {
    const auto r = static_cast<std::size_t>(s.num_contexts + g);
    const auto first = static_cast<std::size_t>(s.num_ctx_tokens() + g * (1 + d));
    const std::int32_t past = s.kv_lens[r] - s.seq_lens[r];
    for (std::int32_t j = 0; j <= e; ++j) {
      // The request's ids, the last one repeated (changed) for a new token.
      const std::int32_t id = j <= d ? s.input_ids[first + static_cast<std::size_t>(j)]
                                     : s.input_ids[first + static_cast<std::size_t>(d)] ^ 1;
      o.input_ids.push_back(id);
      o.position_ids.push_back(past + j);
      o.previous_pos_id_offsets.push_back(
          s.previous_pos_id_offsets.empty() ? 0 : s.previous_pos_id_offsets[first - static_cast<std::size_t>(s.num_ctx_tokens())]);
    }
    o.seq_lens[r] = 1 + e;
    o.kv_lens[r] = past + 1 + e;
    if (r - static_cast<std::size_t>(s.num_contexts) < o.num_accepted_tokens.size()) {
      auto& a = o.num_accepted_tokens[r - static_cast<std::size_t>(s.num_contexts)];
      a = std::min(a, e);
    }
  }
  o.draft_loop = s.draft_loop && e > 0;
  try {
    validate(o);  // a kv_len or position one step past its limit
  } catch (const UsageError&) {
    return false;
  }
  *out = std::move(o);
  return true;
}

Scenario another_key(const Scenario& s) {
  Scenario other = s;
  const std::int32_t plain_contexts = s.num_contexts - s.num_chunked_ctx_requests;
  if (s.key.batch_size < kBatchSizeMax && s.num_tokens() < kTokensMax) {
    // A one-token context request first, with a token id no other token has:
    // the first output differs from the first of `s`, so an output block the
    // two keys' graphs share shows.
    std::int32_t id = 0;
    for (std::int32_t existing : s.input_ids) id = std::max(id, existing);
    other.seq_lens.insert(other.seq_lens.begin(), 1);
    other.kv_lens.insert(other.kv_lens.begin(), 1);
    other.input_ids.insert(other.input_ids.begin(),
                           id < std::numeric_limits<std::int32_t>::max() ? id + 1 : 0);
    other.position_ids.insert(other.position_ids.begin(), 0);
    other.num_contexts += 1;
  } else if (s.num_generations > 0) {
    // Without the last generation request (a dummy when there are any).
    const std::int32_t g = s.num_generations - 1;
    const auto width = static_cast<std::ptrdiff_t>(1 + s.key.draft_len);
    other.num_generations -= 1;
    other.num_dummy_requests = std::max(0, s.num_dummy_requests - 1);
    other.seq_lens.pop_back();
    other.kv_lens.pop_back();
    other.num_accepted_tokens.pop_back();
    other.input_ids.resize(other.input_ids.size() - static_cast<std::size_t>(width));
    other.position_ids.resize(other.position_ids.size() - static_cast<std::size_t>(width));
    other.previous_pos_id_offsets.resize(static_cast<std::size_t>(g * width));
    if (s.num_chunked_ctx_requests == 0) other.previous_kv_lens_offsets.pop_back();
  } else {
    // Without the first context request.
    const std::ptrdiff_t width = s.seq_lens[0];
    other.seq_lens.erase(other.seq_lens.begin());
    other.kv_lens.erase(other.kv_lens.begin());
    other.input_ids.erase(other.input_ids.begin(), other.input_ids.begin() + width);
    other.position_ids.erase(other.position_ids.begin(), other.position_ids.begin() + width);
    if (plain_contexts == 0) {
      other.num_chunked_ctx_requests -= 1;
      other.previous_kv_lens_offsets.erase(other.previous_kv_lens_offsets.begin());
    }
    other.num_contexts -= 1;
  }
  other.key.batch_size = other.num_seqs();
  validate(other);
  return other;
}

bool one_more_dummy(const Scenario& s, Scenario* out) {
  const std::int32_t g = s.num_generations - s.num_dummy_requests - 1;  // the last real one
  if (g < 0) return false;
  *out = s;
  out->num_dummy_requests += 1;
  out->num_accepted_tokens[static_cast<std::size_t>(g)] = 0;
  const auto width = static_cast<std::size_t>(1 + s.key.draft_len);
  for (std::size_t j = 0; j < width; ++j) {
    out->previous_pos_id_offsets[static_cast<std::size_t>(g) * width + j] = 0;
  }
  if (s.num_chunked_ctx_requests == 0) {
    out->previous_kv_lens_offsets[static_cast<std::size_t>(g)] = 0;
  }
  validate(*out);
  return true;
}

}  // namespace properties_detail

Verdict check_outputs_equal(std::string_view property, const std::string& what,
                            const Outputs& expected, const Outputs& actual) {
  if (auto v = properties_detail::compare_outputs(property, what, expected, actual)) return *v;
  return properties_detail::pass(property);
}

Verdict failure_of_current_exception(std::string_view property, Subjects& subjects) {
  Verdict v;
  v.passed = false;
  v.property = std::string(property);
  try {
    throw;
  } catch (const BackendError& e) {
    if (e.kind() == BackendErrorKind::kUnavailable || e.kind() == BackendErrorKind::kDevice) throw;
    v.message = std::string("the subject made an illegal backend call: ") + e.what();
  } catch (const SubjectError& e) {
    v.message = e.what();
  }
  subjects.abandon_capture();
  return v;
}

Verdict check_property(const PropertyInfo& property, Subjects& subjects, const Scenario& scenario) {
  try {
    return property.check(subjects, scenario);
  } catch (...) {
    return failure_of_current_exception(property.name, subjects);
  }
}

std::string format_verdict(const Verdict& v) {
  std::ostringstream out;
  out << v.property << ": " << (v.passed ? "passed" : "VIOLATED") << '\n';
  if (!v.passed) {
    out << "  " << v.message << '\n';
    if (v.mismatch) {
      out << "  first difference: " << v.mismatch->location << " expected "
          << v.mismatch->expected << ", got " << v.mismatch->actual << '\n';
    }
    for (const auto& note : v.notes) out << "  " << note << '\n';
  }
  return out.str();
}

}  // namespace capcheck
