// Stable 64-bit hashes for names that must not change between runs and machines (trial ids,
// staging directories): FNV-1a 64 of bytes, and its 16-hex-digit spelling. Not for security.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace md {

inline constexpr std::uint64_t kFnv1a64Basis = 14695981039346656037ULL;

// FNV-1a 64 of `bytes`, continuing from `hash` (the basis for a fresh hash).
std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t hash = kFnv1a64Basis);

// 16 lower-case hex digits, most significant first.
std::string hex16(std::uint64_t value);

}  // namespace md
