#include <algorithm>
#include <cmath>
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
    case ElementType::kInt8: return 1;
    case ElementType::kInt16: return 2;
    case ElementType::kFloat16: return 2;
    case ElementType::kBFloat16: return 2;
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
// IEEE binary16 to float, exactly (every half is a float).
float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits = 0;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa != 0) {  // subnormal: normalize
    std::uint32_t e = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  } else {
    bits = sign;
  }
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

template <typename T>
std::string format_floating(T value, int precision) {
  if (std::isnan(value)) return std::signbit(value) ? "-nan" : "nan";
  if (value == 0 && std::signbit(value)) return "-0";
  std::ostringstream out;
  out.precision(precision);
  out << value;
  return out.str();
}

}  // namespace

std::string format_element(ElementType type, const std::byte* data) {
  switch (type) {
    case ElementType::kInt32: return std::to_string(load<std::int32_t>(data));
    case ElementType::kInt64: return std::to_string(load<std::int64_t>(data));
    case ElementType::kUInt8: return std::to_string(load<std::uint8_t>(data));
    case ElementType::kBool: return load<std::uint8_t>(data) != 0 ? "true" : "false";
    case ElementType::kInt8: return std::to_string(load<std::int8_t>(data));
    case ElementType::kInt16: return std::to_string(load<std::int16_t>(data));
    case ElementType::kFloat32: return format_floating(load<float>(data), 9);
    case ElementType::kFloat64: return format_floating(load<double>(data), 17);
    case ElementType::kFloat16: return format_floating(half_to_float(load<std::uint16_t>(data)), 5);
    case ElementType::kBFloat16: {
      const std::uint32_t bits = static_cast<std::uint32_t>(load<std::uint16_t>(data)) << 16;
      float value;
      std::memcpy(&value, &bits, sizeof value);
      return format_floating(value, 4);
    }
  }
  CAPCHECK_ASSERT(false && "unknown element type");
  return "";
}

std::string element_location(const std::string& name, const std::vector<std::int64_t>& shape,
                             std::int64_t index) {
  if (shape.size() <= 1) return name + "[" + std::to_string(index) + "]";
  std::vector<std::int64_t> at(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    const std::int64_t extent = std::max<std::int64_t>(shape[d], 1);
    at[d] = index % extent;
    index /= extent;
  }
  std::string text = name + "[";
  for (std::size_t d = 0; d < at.size(); ++d) text += (d ? ", " : "") + std::to_string(at[d]);
  return text + "]";
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
  if (expected.type != actual.type) {
    // A subject's output of another element type: a difference, not a crash.
    *out = Mismatch{expected.name, 0, "a tensor of element size " + std::to_string(element_size(expected.type)),
                    "one of element size " + std::to_string(element_size(actual.type)) +
                        " (another element type)",
                    expected.name + " (element type)"};
    return true;
  }
  // memcmp: std::equal on std::byte compares element by element.
  if (expected.bytes.size() == actual.bytes.size() &&
      (expected.bytes.empty() ||
       std::memcmp(expected.bytes.data(), actual.bytes.data(), expected.bytes.size()) == 0)) {
    return false;
  }
  const std::int64_t common = std::min(expected.count(), actual.count());
  for (std::int64_t i = 0; i < common; ++i) {
    if (expected.same_element(actual, i)) continue;
    *out = Mismatch{expected.name, i, expected.element(i), actual.element(i),
                    element_location(expected.name, expected.shape, i)};
    return true;
  }
  // Equal where both have elements, but one has more (an output of another
  // size: a graph of another key replayed, a slice of the wrong length).
  CAPCHECK_ASSERT(expected.count() != actual.count());
  auto at = [&](const Observed& o) {
    return common < o.count() ? o.element(common)
                              : "nothing (" + std::to_string(o.count()) + " elements in all)";
  };
  *out = Mismatch{expected.name, common, at(expected), at(actual),
                  common < expected.count() ? element_location(expected.name, expected.shape, common)
                                            : expected.name + "[" + std::to_string(common) + "]"};
  return true;
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

Instance& Subjects::captured(const Scenario& scenario) {
  Instance& instance = graph(scenario);
  instance.prepare(scenario);
  instance.capture();
  return instance;
}

}  // namespace capcheck
