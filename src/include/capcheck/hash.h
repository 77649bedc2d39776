// FNV-1a, the one hash of capcheck: token checksums (32-bit), CI seeds derived
// from property names, regression-file names and the engine's state hash
// (64-bit). Stable across machines and runs: the bytes hashed are defined here,
// never the host's layout.
#pragma once

#include <cstdint>
#include <string_view>

namespace capcheck {

/// 32-bit FNV-1a of `bytes`.
std::uint32_t fnv1a32(std::string_view bytes);

/// 64-bit FNV-1a, fed incrementally.
class Fnv1a64 {
 public:
  /// Adds every byte of `bytes`.
  Fnv1a64& add_bytes(std::string_view bytes);
  /// Adds the eight bytes of `value`, least significant first.
  Fnv1a64& add_u64(std::uint64_t value);
  Fnv1a64& add_i64(std::int64_t value) { return add_u64(static_cast<std::uint64_t>(value)); }
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 14695981039346656037ull;
};

/// 64-bit FNV-1a of `bytes`.
inline std::uint64_t fnv1a64(std::string_view bytes) { return Fnv1a64().add_bytes(bytes).value(); }

}  // namespace capcheck
