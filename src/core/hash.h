// A fast 64-bit non-cryptographic hash for integrity checks (artifact section checksums, source
// hashes). It catches corruption and truncation, not tampering: an adversary can forge it.
// Streaming: Hash64 h; h.Update(a); h.Update(b); h.Digest() equals hashing a+b at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

class Hash64 {
 public:
  Hash64();
  void Update(const void* data, size_t size_bytes);
  uint64_t Digest() const;

 private:
  void Round(const uint8_t* block);  // 32 bytes
  uint64_t lanes_[4];
  uint8_t pending_[32];
  size_t pending_bytes_ = 0;
  uint64_t total_bytes_ = 0;
};

uint64_t HashBytes(const void* data, size_t size_bytes);
// 16 lowercase hex digits.
std::string HashToHex(uint64_t hash);

}  // namespace kiln
