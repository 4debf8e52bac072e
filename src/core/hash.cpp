#include "core/hash.h"

#include <cstring>

namespace kiln {

namespace {
constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ull;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t Mix(uint64_t lane, uint64_t word) { return Rotl(lane + word * kPrime2, 31) * kPrime1; }
}  // namespace

Hash64::Hash64() : lanes_{kPrime1 + kPrime2, kPrime2, 0, 0 - kPrime1} {}

void Hash64::Round(const uint8_t* block) {
  for (int i = 0; i < 4; ++i) lanes_[i] = Mix(lanes_[i], Load64(block + 8 * i));
}

void Hash64::Update(const void* data, size_t size_bytes) {
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  total_bytes_ += size_bytes;
  if (pending_bytes_ > 0) {
    const size_t take = std::min(size_bytes, 32 - pending_bytes_);
    std::memcpy(pending_ + pending_bytes_, bytes, take);
    pending_bytes_ += take;
    bytes += take;
    size_bytes -= take;
    if (pending_bytes_ < 32) return;
    Round(pending_);
    pending_bytes_ = 0;
  }
  for (; size_bytes >= 32; bytes += 32, size_bytes -= 32) Round(bytes);
  std::memcpy(pending_, bytes, size_bytes);
  pending_bytes_ = size_bytes;
}

uint64_t Hash64::Digest() const {
  uint64_t hash = Rotl(lanes_[0], 1) + Rotl(lanes_[1], 7) + Rotl(lanes_[2], 12) + Rotl(lanes_[3], 18);
  for (uint64_t lane : lanes_) hash = (hash ^ Mix(0, lane)) * kPrime1 + kPrime3;
  hash += total_bytes_;
  size_t i = 0;
  for (; i + 8 <= pending_bytes_; i += 8) hash = Rotl(hash ^ Mix(0, Load64(pending_ + i)), 27) * kPrime1 + kPrime3;
  for (; i < pending_bytes_; ++i) hash = Rotl(hash ^ (pending_[i] * kPrime3), 11) * kPrime1;
  hash ^= hash >> 33;
  hash *= kPrime2;
  hash ^= hash >> 29;
  hash *= kPrime3;
  hash ^= hash >> 32;
  return hash;
}

uint64_t HashBytes(const void* data, size_t size_bytes) {
  Hash64 hash;
  hash.Update(data, size_bytes);
  return hash.Digest();
}

std::string HashToHex(uint64_t hash) {
  static const char digits[] = "0123456789abcdef";
  std::string text(16, '0');
  for (int i = 15; i >= 0; --i, hash >>= 4) text[static_cast<size_t>(i)] = digits[hash & 0xf];
  return text;
}

}  // namespace kiln
