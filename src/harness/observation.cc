#include <cstring>
#include <sstream>

#include "capcheck/errors.h"
#include "capcheck/instance.h"

namespace capcheck {

std::size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::kInt32: return 4;
    case ElementType::kInt64: return 8;
    case ElementType::kFloat32: return 4;
    case ElementType::kFloat64: return 8;
    case ElementType::kUInt8: return 1;
    case ElementType::kBool: return 1;
  }
  CAPCHECK_ASSERT(false && "unknown element type");
  return 1;
}

namespace {
template <typename T>
T load(const std::byte* data) {
  T value;
  std::memcpy(&value, data, sizeof value);
  return value;
}
}  // namespace

std::string format_element(ElementType type, const std::byte* data) {
  switch (type) {
    case ElementType::kInt32: return std::to_string(load<std::int32_t>(data));
    case ElementType::kInt64: return std::to_string(load<std::int64_t>(data));
    case ElementType::kUInt8: return std::to_string(load<std::uint8_t>(data));
    case ElementType::kBool: return load<std::uint8_t>(data) != 0 ? "true" : "false";
    case ElementType::kFloat32:
    case ElementType::kFloat64: {
      std::ostringstream out;
      out.precision(type == ElementType::kFloat32 ? 9 : 17);
      if (type == ElementType::kFloat32) {
        out << load<float>(data);
      } else {
        out << load<double>(data);
      }
      return out.str();
    }
  }
  CAPCHECK_ASSERT(false && "unknown element type");
  return "";
}

std::string Observed::element(std::int64_t index) const {
  return format_element(type, bytes.data() + static_cast<std::size_t>(index) * element_size(type));
}

bool Observed::same_element(const Observed& other, std::int64_t index) const {
  const std::size_t size = element_size(type);
  const std::size_t at = static_cast<std::size_t>(index) * size;
  return std::memcmp(bytes.data() + at, other.bytes.data() + at, size) == 0;
}

bool first_difference(const Observed& expected, const Observed& actual, Mismatch* out) {
  CAPCHECK_ASSERT(expected.type == actual.type);
  CAPCHECK_ASSERT(expected.bytes.size() == actual.bytes.size());
  // memcmp: std::equal on std::byte compares element by element.
  if (expected.bytes.empty() ||
      std::memcmp(expected.bytes.data(), actual.bytes.data(), expected.bytes.size()) == 0) {
    return false;
  }
  for (std::int64_t i = 0; i < expected.count(); ++i) {
    if (expected.same_element(actual, i)) continue;
    *out = Mismatch{expected.name, i, expected.element(i), actual.element(i)};
    return true;
  }
  CAPCHECK_ASSERT(false && "bytes differ but no element does");
  return false;
}

bool first_difference(const Snapshot& before, const Snapshot& after, SnapshotDifference* out) {
  CAPCHECK_ASSERT(before.size() == after.size());
  for (std::size_t b = 0; b < before.size(); ++b) {
    if (first_difference(before[b], after[b], &out->mismatch)) {
      out->buffer = b;
      return true;
    }
  }
  return false;
}

std::string changed_buffers(const Snapshot& before, const Snapshot& after) {
  CAPCHECK_ASSERT(before.size() == after.size());
  std::string text;
  for (std::size_t b = 0; b < before.size(); ++b) {
    std::int64_t changed = 0;
    for (std::int64_t i = 0; i < before[b].count(); ++i) {
      changed += before[b].same_element(after[b], i) ? 0 : 1;
    }
    if (changed > 0) {
      text += (text.empty() ? "" : ", ") + before[b].name + " (" + std::to_string(changed) +
              (changed == 1 ? " element)" : " elements)");
    }
  }
  return text;
}

}  // namespace capcheck
