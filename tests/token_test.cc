// Tokens and JSON: round trips over generated scenarios, and a clean error for
// every malformed input.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "capcheck/errors.h"
#include "capcheck/token.h"
#include "capcheck/generators.h"

namespace capcheck {
namespace {

rc::Gen<Scenario> any_scenario() {
  return rc::gen::mapcat(rc::gen::inRange(0, kProtocolCount * kMutantCount), [](int which) {
    GenOptions options;
    options.protocol = static_cast<Protocol>(which % kProtocolCount);
    options.mutant = static_cast<Mutant>(which / kProtocolCount);
    return gen_scenario(options);
  });
}

RC_GTEST_PROP(TokenRoundTrip, DecodeOfEncodeIsIdentity, ()) {
  const Scenario s = *any_scenario();
  const std::string token = encode_token(s);
  RC_ASSERT(token.rfind("cc2:", 0) == 0u);
  RC_ASSERT(decode_token(token) == s);
  RC_ASSERT(encode_token(decode_token(token)) == token);
  // Version 1 (no subject) still reads, as the built-in subject's scenario.
  const std::string v1 = detail::encode_token_v1(s);
  RC_ASSERT(v1.rfind("cc1:", 0) == 0u);
  const DecodedToken old = decode_subject_token(v1);
  RC_ASSERT(old.scenario == s);
  RC_ASSERT(!old.names_subject);
  RC_ASSERT(old.subject.name == std::string("trtllm"));
}

RC_GTEST_PROP(TokenRoundTrip, TheSubjectAndItsOptionsTravelWithTheScenario, ()) {
  const Scenario s = *any_scenario();
  SubjectRef subject;
  subject.name = *rc::gen::element<std::string>("vllm-style", "sglang-style", "my.engine_2");
  const int options = *rc::gen::inRange(0, 4);
  for (int k = 0; k < options; ++k) {
    subject.options["opt" + std::to_string(k)] =
        *rc::gen::element<std::string>("", "none", "pad-slot", "a/b:c+d,e.f");
  }
  const DecodedToken decoded = decode_subject_token(encode_token(s, subject));
  RC_ASSERT(decoded.names_subject);
  RC_ASSERT(decoded.subject == subject);
  RC_ASSERT(decoded.scenario == s);
}

TEST(Token, SubjectNamesAndOptionValuesAreChecked) {
  auto error = [](const SubjectRef& subject) {
    try {
      encode_token(Scenario{}, subject);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error(SubjectRef{"", {}}).find("is not a name"), std::string::npos);
  EXPECT_NE(error(SubjectRef{"Upper", {}}).find("is not a name"), std::string::npos);
  EXPECT_NE(error(SubjectRef{"-dash", {}}).find("is not a name"), std::string::npos);
  EXPECT_NE(error(SubjectRef{std::string(65, 'a'), {}}).find("is not a name"), std::string::npos);
  EXPECT_NE(error(SubjectRef{"ok", {{"bug", "has space"}}}).find("of subject option bug"),
            std::string::npos);
  EXPECT_NE(error(SubjectRef{"ok", {{"Bad", "x"}}}).find("is not a name"), std::string::npos);
  EXPECT_EQ(error(SubjectRef{"ok", {{"bug", "pad-slot"}}}), "accepted");
}

RC_GTEST_PROP(JsonRoundTrip, ParseOfPrintIsIdentity, ()) {
  const Scenario s = *any_scenario();
  RC_ASSERT(from_json(to_json(s)) == s);
  RC_ASSERT(from_json(to_json(s, -1)) == s);
}

RC_GTEST_PROP(TokenRoundTrip, AnySingleCharacterEditIsRejectedOrStillValid, ()) {
  const Scenario s = *any_scenario();
  std::string token = encode_token(s);
  const auto at = *rc::gen::inRange<std::size_t>(0, token.size());
  token[at] = *rc::gen::element('A', 'z', '0', '-', '_', '!', ':');
  try {
    const Scenario decoded = decode_token(token);
    validate(decoded);  // never an invalid scenario
  } catch (const UsageError&) {
    // a clean, typed rejection
  }
}

std::string token_error(const std::string& token) {
  try {
    decode_token(token);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(Token, MalformedTokensAreRejectedWithTheReason) {
  const std::string good = encode_token(Scenario{});
  EXPECT_NE(token_error("").find("must start with 'cc2:'"), std::string::npos);
  EXPECT_NE(token_error("xx1:AAAA").find("must start with 'cc2:'"), std::string::npos);
  EXPECT_NE(token_error("cc3:AAAA").find("version 'cc3:' is not supported"), std::string::npos);
  EXPECT_NE(token_error("cc1:AA*A").find("not in the base64url alphabet"), std::string::npos);
  EXPECT_NE(token_error("cc1:A").find("not a base64url length"), std::string::npos);
  EXPECT_NE(token_error("cc1:").find("truncated"), std::string::npos);
  bool checksum = false;  // some cut of the end is caught by the checksum itself
  for (std::size_t cut = 1; cut <= 6; ++cut) {
    checksum = checksum || token_error(good.substr(0, good.size() - cut)).find("checksum") !=
                               std::string::npos;
  }
  EXPECT_TRUE(checksum);
  std::string flipped = good;
  flipped[6] = flipped[6] == 'A' ? 'B' : 'A';
  EXPECT_NE(token_error(flipped).find("invalid"), std::string::npos);
  EXPECT_NE(token_error(std::string(kTokenLengthMax + 1, 'A')).find("above the limit"),
            std::string::npos);
}

std::string json_error(const std::string& text) {
  try {
    from_json(text);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(Json, MalformedScenariosNameTheField) {
  const std::string good = to_json(Scenario{});
  EXPECT_EQ(json_error(good), "accepted");
  EXPECT_NE(json_error("{").find("invalid scenario JSON"), std::string::npos);
  EXPECT_NE(json_error("[]").find("top level must be an object"), std::string::npos);
  auto edited = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return json_error(text.replace(at, from.size(), to));
  };
  EXPECT_NE(edited("\"warmups\": 0", "\"warmups\": \"2\"").find("'warmups' must be an integer"),
            std::string::npos);
  EXPECT_NE(edited("\"warmups\": 0", "\"warmup\": 0").find("unknown field 'warmup'"),
            std::string::npos);
  EXPECT_NE(edited("\"protocol\": \"reference\"", "\"protocol\": \"fixed\"")
                .find("unknown protocol 'fixed'"),
            std::string::npos);
  EXPECT_NE(edited("\"kv_lens\": [\n    1\n  ]", "\"kv_lens\": [1.5]").find("kv_lens[0] must be an integer"),
            std::string::npos)
      << good;
  EXPECT_NE(edited("\"batch_size\": 1", "\"batch_size\": 99999999999")
                .find("out of 32-bit range"),
            std::string::npos);
  EXPECT_NE(edited("\"batch_size\": 1,", "").find("missing field 'batch_size'"),
            std::string::npos);
  EXPECT_NE(edited("\"position_ids\": [\n    [\n      0\n    ]\n  ]", "\"position_ids\": [0]")
                .find("[1, num_tokens]"),
            std::string::npos);
  EXPECT_NE(edited("\"batch_size\": 1", "\"batch_size\": 2").find("invalid scenario: batch_size"),
            std::string::npos);
}

}  // namespace
}  // namespace capcheck
