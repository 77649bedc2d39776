// Scenario validation: every inconsistent field is rejected with a message
// naming the field and what is allowed.
#include <gtest/gtest.h>

#include <functional>

#include "capcheck/errors.h"
#include "capcheck/scenario.h"

namespace capcheck {
namespace {

Scenario two_generation_requests() {
  Scenario s;
  s.key = GraphKey{2, 1};
  s.num_generations = 2;
  s.seq_lens = {2, 2};
  s.kv_lens = {5, 9};
  s.previous_pos_id_offsets = {1, 1, 2, 2};
  s.previous_kv_lens_offsets = {-1, 0};
  s.input_ids = {1, 2, 3, 4};
  s.position_ids = {3, 4, 7, 8};
  s.num_accepted_tokens = {0, 1};
  return s;
}

std::string rejection(const std::function<void(Scenario&)>& edit) {
  Scenario s = two_generation_requests();
  edit(s);
  try {
    validate(s);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(Scenario, DefaultAndHandBuiltScenariosAreValid) {
  EXPECT_NO_THROW(validate(Scenario{}));
  EXPECT_NO_THROW(validate(two_generation_requests()));
}

TEST(Scenario, DerivedCounts) {
  Scenario s = two_generation_requests();
  EXPECT_EQ(s.num_seqs(), 2);
  EXPECT_EQ(s.num_tokens(), 4);
  EXPECT_EQ(s.num_ctx_tokens(), 0);
  EXPECT_EQ(s.kv_offsets_count(), 2);
  EXPECT_FALSE(s.offsets_are_zero());
}

struct BadField {
  const char* expected_fragment;
  std::function<void(Scenario&)> edit;
};

TEST(Scenario, EveryInconsistentFieldIsNamed) {
  const std::vector<BadField> cases = {
      {"batch_size: is 0, allowed 1..256", [](Scenario& s) { s.key.batch_size = 0; }},
      {"batch_size: is 3 but num_contexts + num_generations = 2",
       [](Scenario& s) { s.key.batch_size = 3; }},
      {"draft_len: is 9, allowed 0..8", [](Scenario& s) { s.key.draft_len = 9; }},
      {"warmups: is -1", [](Scenario& s) { s.warmups_count = -1; }},
      {"warmups: is 17, allowed 0..16", [](Scenario& s) { s.warmups_count = 17; }},
      {"num_chunked_ctx_requests: is 1, allowed 0..0",
       [](Scenario& s) { s.num_chunked_ctx_requests = 1; }},
      {"seq_lens: has 1 entries, expected 2", [](Scenario& s) { s.seq_lens = {2}; }},
      {"seq_lens[1]: is 3 for a generation request; it must be 1 + draft_len = 2",
       [](Scenario& s) { s.seq_lens[1] = 3; }},
      {"kv_lens: has 3 entries", [](Scenario& s) { s.kv_lens = {1, 2, 3}; }},
      {"kv_lens[0]: is -1", [](Scenario& s) { s.kv_lens[0] = -1; }},
      {"input_ids: has 3 entries, expected 4", [](Scenario& s) { s.input_ids.pop_back(); }},
      {"position_ids: has 5 entries, expected 4",
       [](Scenario& s) { s.position_ids.push_back(0); }},
      {"previous_pos_id_offsets: has 3 entries, expected 4 (one per generation token)",
       [](Scenario& s) { s.previous_pos_id_offsets.pop_back(); }},
      {"previous_kv_lens_offsets: has 1 entries, expected 2 (one per generation request)",
       [](Scenario& s) { s.previous_kv_lens_offsets = {0}; }},
      {"previous_kv_lens_offsets[0]: is 65537",
       [](Scenario& s) { s.previous_kv_lens_offsets[0] = 65537; }},
      {"position_ids[2]: is 1048577", [](Scenario& s) { s.position_ids[2] = 1048577; }},
      {"num_accepted_tokens: has 1 entries, expected 2 (one per generation request)",
       [](Scenario& s) { s.num_accepted_tokens = {0}; }},
      {"num_accepted_tokens[1]: is 2, allowed 0..1", [](Scenario& s) { s.num_accepted_tokens[1] = 2; }},
      {"draft_loop: is on but draft_len is 0",
       [](Scenario& s) {
         s.key.draft_len = 0;
         s.seq_lens = {1, 1};
         s.previous_pos_id_offsets = {0, 0};
         s.input_ids = {1, 2};
         s.position_ids = {4, 8};
         s.num_accepted_tokens = {0, 0};
         s.draft_loop = true;
       }},
      {"num_dummy_requests: is 3, allowed 0..2", [](Scenario& s) { s.num_dummy_requests = 3; }},
      {"previous_pos_id_offsets[2]: must be 0 of padding dummy generation request 1",
       [](Scenario& s) { s.num_dummy_requests = 1; s.num_accepted_tokens[1] = 0; }},
      {"num_accepted_tokens[1]: must be 0 of padding dummy generation request 1",
       [](Scenario& s) { s.num_dummy_requests = 1; }},
  };
  for (const auto& c : cases) {
    const std::string message = rejection(c.edit);
    EXPECT_NE(message.find(c.expected_fragment), std::string::npos)
        << "expected '" << c.expected_fragment << "' in: " << message;
    EXPECT_EQ(message.rfind("invalid scenario: ", 0), 0u) << message;
  }
}

TEST(Scenario, ContextRequestsNeedAPositiveSeqLen) {
  Scenario s;
  s.key = GraphKey{1, 0};
  s.num_contexts = 1;
  s.num_generations = 0;
  s.seq_lens = {0};
  s.kv_lens = {0};
  s.previous_pos_id_offsets = {};
  s.previous_kv_lens_offsets = {};
  s.input_ids = {};
  s.position_ids = {};
  s.num_accepted_tokens = {};
  EXPECT_THROW(validate(s), UsageError);
}

TEST(Scenario, NamesRoundTripAndUnknownNamesListTheAllowedOnes) {
  for (int i = 0; i < kProtocolCount; ++i) {
    const auto p = static_cast<Protocol>(i);
    EXPECT_EQ(parse_protocol(protocol_name(p)), p);
  }
  for (int i = 0; i < kMutantCount; ++i) {
    const auto m = static_cast<Mutant>(i);
    EXPECT_EQ(parse_mutant(mutant_name(m)), m);
  }
  try {
    parse_protocol("seedpr");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("allowed: reference, pre-fix, seed-pr, snapshot-restore"),
              std::string::npos);
  }
  EXPECT_THROW(parse_mutant("stale"), UsageError);
}

TEST(Scenario, SummaryNamesKeyProtocolAndOffsets) {
  const std::string text = summarize(two_generation_requests());
  EXPECT_NE(text.find("key=(batch_size=2, draft_len=1)"), std::string::npos) << text;
  EXPECT_NE(text.find("previous_kv_lens_offsets=[-1,0]"), std::string::npos) << text;
}

}  // namespace
}  // namespace capcheck
