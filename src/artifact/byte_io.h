// Little-endian binary encoding for .kiln sections.
//
// ByteWriter appends fixed-width fields. ByteReader reads them back from untrusted bytes with a
// sticky error: a read past the end (or a count that cannot fit in the bytes left) sets the
// error, returns zero, and every later read returns zero too; the decoder checks ok() at the end
// of each structure. No read ever touches memory outside the span.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace kiln {

class ByteWriter {
 public:
  void U8(uint8_t v) { bytes_.push_back(v); }
  void I32(int32_t v) { Raw(&v, 4); }
  void I64(int64_t v) { Raw(&v, 8); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void F32(float v) { Raw(&v, 4); }
  void String(const std::string& s) {
    U64(s.size());
    Raw(s.data(), s.size());
  }
  void Raw(const void* data, size_t size) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint8_t U8() { return Read<uint8_t>(); }
  int32_t I32() { return Read<int32_t>(); }
  int64_t I64() { return Read<int64_t>(); }
  uint64_t U64() { return Read<uint64_t>(); }
  float F32() { return Read<float>(); }
  std::string String(size_t max_bytes = 1 << 20) {
    const uint64_t size = U64();
    if (size > max_bytes || size > remaining()) return Fail("a string longer than the section"), std::string();
    std::string s(reinterpret_cast<const char*>(bytes_.data() + position_), static_cast<size_t>(size));
    position_ += static_cast<size_t>(size);
    return s;
  }
  // A count of items each at least `min_item_bytes` long: 0 (and an error) if they cannot fit.
  uint64_t Count(size_t min_item_bytes) {
    const uint64_t count = U64();
    if (min_item_bytes > 0 && count > remaining() / min_item_bytes) return Fail("a count larger than the section holds"), 0;
    return count;
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t remaining() const { return ok() ? bytes_.size() - position_ : 0; }
  void Fail(const std::string& what) {
    if (error_.empty()) error_ = what + " at byte " + std::to_string(position_);
  }

 private:
  template <typename T>
  T Read() {
    T value{};
    if (!ok() || bytes_.size() - position_ < sizeof(T)) {
      Fail("unexpected end of section");
      return value;
    }
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }

  std::span<const uint8_t> bytes_;
  size_t position_ = 0;
  std::string error_;
};

}  // namespace kiln
