// The JSON form of a Scenario (hand-written scenarios, `--json` output).
#include "capcheck/token.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "capcheck/errors.h"

namespace capcheck {

// --------------------------------------------------------------------- JSON

namespace {

using nlohmann::json;

const std::set<std::string>& known_fields() {
  static const std::set<std::string> fields = {
      "protocol",    "mutant",       "batch_size",       "draft_len",
      "warmups",     "num_contexts", "num_chunked_ctx_requests",
      "num_generations",             "seq_lens",         "kv_lens",
      "previous_pos_id_offsets",     "previous_kv_lens_offsets",
      "input_ids",   "position_ids", "draft_loop", "num_accepted_tokens",
      "num_dummy_requests"};
  return fields;
}

// An integer JSON value as int64, saturating: nlohmann stores integers above
// INT64_MAX unsigned, and get<int64_t>() would wrap them to negatives.
std::int64_t exact_integer(const json& value) {
  if (value.is_number_unsigned()) {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(value.get<std::uint64_t>(), static_cast<std::uint64_t>(INT64_MAX)));
  }
  return value.get<std::int64_t>();
}

const json& field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end()) {
    throw UsageError(std::string("invalid scenario JSON: missing field '") + name + "'");
  }
  return *it;
}

std::int32_t int_field(const json& object, const char* name) {
  const json& value = field(object, name);
  if (!value.is_number_integer()) {
    throw UsageError(std::string("invalid scenario JSON: field '") + name +
                     "' must be an integer, got " + value.type_name());
  }
  const std::int64_t v = exact_integer(value);
  if (v < INT32_MIN || v > INT32_MAX) {
    throw UsageError(std::string("invalid scenario JSON: field '") + name +
                     "' is out of 32-bit range");
  }
  return static_cast<std::int32_t>(v);
}

std::vector<std::int32_t> int_array(const json& value, const std::string& name) {
  if (!value.is_array()) {
    throw UsageError("invalid scenario JSON: field '" + name + "' must be an array of integers, got " +
                     value.type_name());
  }
  std::vector<std::int32_t> out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    const json& element = value[i];
    if (!element.is_number_integer()) {
      throw UsageError("invalid scenario JSON: " + name + "[" + std::to_string(i) +
                       "] must be an integer, got " + element.type_name());
    }
    const std::int64_t v = exact_integer(element);
    if (v < INT32_MIN || v > INT32_MAX) {
      throw UsageError("invalid scenario JSON: " + name + "[" + std::to_string(i) +
                       "] is out of 32-bit range");
    }
    out.push_back(static_cast<std::int32_t>(v));
  }
  return out;
}

std::string string_field(const json& object, const char* name) {
  const json& value = field(object, name);
  if (!value.is_string()) {
    throw UsageError(std::string("invalid scenario JSON: field '") + name +
                     "' must be a string, got " + value.type_name());
  }
  return value.get<std::string>();
}

}  // namespace

std::string to_json(const Scenario& s, int indent) {
  json j = json::object();
  j["protocol"] = std::string(protocol_name(s.protocol));
  j["mutant"] = std::string(mutant_name(s.mutant));
  j["batch_size"] = s.key.batch_size;
  j["draft_len"] = s.key.draft_len;
  j["warmups"] = s.warmups_count;
  j["num_contexts"] = s.num_contexts;
  j["num_chunked_ctx_requests"] = s.num_chunked_ctx_requests;
  j["num_generations"] = s.num_generations;
  j["seq_lens"] = s.seq_lens;
  j["kv_lens"] = s.kv_lens;
  j["previous_pos_id_offsets"] = s.previous_pos_id_offsets;
  j["previous_kv_lens_offsets"] = s.previous_kv_lens_offsets;
  j["input_ids"] = s.input_ids;
  j["position_ids"] = json::array({s.position_ids});
  j["draft_loop"] = s.draft_loop;
  j["num_accepted_tokens"] = s.num_accepted_tokens;
  j["num_dummy_requests"] = s.num_dummy_requests;
  return j.dump(indent);
}

Scenario from_json(std::string_view text) {
  if (text.size() > kScenarioJsonBytesMax) {
    throw UsageError("invalid scenario JSON: " + std::to_string(text.size()) +
                     " bytes, above the limit of " + std::to_string(kScenarioJsonBytesMax) +
                     " bytes of a scenario");
  }
  // Duplicate keys are rejected: with "last one wins" a scenario file could
  // say two things and mean the second silently.
  std::vector<std::set<std::string>> keys_per_object;
  const json::parser_callback_t reject_duplicates = [&](int, json::parse_event_t event,
                                                        json& parsed) {
    if (event == json::parse_event_t::object_start) keys_per_object.emplace_back();
    if (event == json::parse_event_t::object_end) keys_per_object.pop_back();
    if (event == json::parse_event_t::key &&
        !keys_per_object.back().insert(parsed.get<std::string>()).second) {
      throw UsageError("invalid scenario JSON: field " + quote_input(parsed.get<std::string>()) +
                       " is given twice");
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), reject_duplicates);
  } catch (const json::exception& e) {  // parse errors and out-of-range numbers alike
    // A parse error quotes the token it stopped in, which can be huge.
    std::string what = e.what();
    if (what.size() > 300) what = what.substr(0, 300) + "...";
    throw UsageError("invalid scenario JSON: " + what);
  }
  if (!j.is_object()) {
    throw UsageError(std::string("invalid scenario JSON: the top level must be an object, got ") +
                     j.type_name());
  }
  for (const auto& item : j.items()) {
    if (!known_fields().count(item.key())) {
      throw UsageError("invalid scenario JSON: unknown field " + quote_input(item.key()) +
                       " (fields are those of `capcheck reproduce --print-json` output)");
    }
  }
  Scenario s;
  s.protocol = parse_protocol(string_field(j, "protocol"));
  s.mutant = j.contains("mutant") ? parse_mutant(string_field(j, "mutant")) : Mutant::kNone;
  s.key.batch_size = int_field(j, "batch_size");
  s.key.draft_len = int_field(j, "draft_len");
  s.warmups_count = int_field(j, "warmups");
  s.num_contexts = int_field(j, "num_contexts");
  s.num_chunked_ctx_requests = int_field(j, "num_chunked_ctx_requests");
  s.num_generations = int_field(j, "num_generations");
  s.seq_lens = int_array(field(j, "seq_lens"), "seq_lens");
  s.kv_lens = int_array(field(j, "kv_lens"), "kv_lens");
  s.previous_pos_id_offsets =
      int_array(field(j, "previous_pos_id_offsets"), "previous_pos_id_offsets");
  s.previous_kv_lens_offsets =
      int_array(field(j, "previous_kv_lens_offsets"), "previous_kv_lens_offsets");
  s.input_ids = int_array(field(j, "input_ids"), "input_ids");
  const json& positions = field(j, "position_ids");
  if (!positions.is_array() || positions.size() != 1 || !positions[0].is_array()) {
    throw UsageError(
        "invalid scenario JSON: field 'position_ids' must be a [1, num_tokens] array, i.e. "
        "[[p0, p1, ...]]");
  }
  s.position_ids = int_array(positions[0], "position_ids[0]");
  // Optional fields (issue-2 era scenarios omit them): draft loop off, nothing
  // accepted, no padding.
  if (j.contains("draft_loop")) {
    if (!j["draft_loop"].is_boolean()) {
      throw UsageError(std::string("invalid scenario JSON: field 'draft_loop' must be true or false, got ") +
                       j["draft_loop"].type_name());
    }
    s.draft_loop = j["draft_loop"].get<bool>();
  }
  s.num_accepted_tokens =
      j.contains("num_accepted_tokens")
          ? int_array(j["num_accepted_tokens"], "num_accepted_tokens")
          : std::vector<std::int32_t>(
                static_cast<std::size_t>(std::clamp(s.num_generations, 0, kBatchSizeMax)), 0);
  s.num_dummy_requests = j.contains("num_dummy_requests") ? int_field(j, "num_dummy_requests") : 0;
  validate(s);
  return s;
}

}  // namespace capcheck
