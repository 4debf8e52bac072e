// GGUF reader on truncated, corrupt and hostile files: each is refused with the right code and a
// message that names the problem (and never crashes or allocates by a count in the file).
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "io/gguf.h"
#include "io/gguf_writer.h"

namespace kiln {
namespace {

// Little-endian bytes, written field by field.
struct Bytes {
  std::vector<uint8_t> out;
  Bytes& Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
    return *this;
  }
  Bytes& U32(uint32_t v) { return Raw(&v, 4); }
  Bytes& U64(uint64_t v) { return Raw(&v, 8); }
  Bytes& Str(const std::string& s) { U64(s.size()); return Raw(s.data(), s.size()); }
  Bytes& Pad(size_t alignment) { out.resize((out.size() + alignment - 1) / alignment * alignment, 0); return *this; }
  Bytes& Zeros(size_t n) { out.resize(out.size() + n, 0); return *this; }
};

Bytes Header(uint64_t num_tensors, uint64_t num_keys) {
  Bytes b;
  b.Raw("GGUF", 4).U32(3).U64(num_tensors).U64(num_keys);
  return b;
}

struct RawTensor {
  std::string name;
  std::vector<int64_t> shape;
  uint32_t type;
  uint64_t offset;
};

// A file of the given tensor infos and `data_bytes` of data, with general.alignment when given.
std::vector<uint8_t> TensorFile(const std::vector<RawTensor>& tensors, size_t data_bytes,
                                std::optional<uint32_t> alignment = std::nullopt) {
  Bytes b = Header(tensors.size(), alignment ? 1 : 0);
  if (alignment) b.Str("general.alignment").U32(4).U32(*alignment);
  for (const RawTensor& t : tensors) {
    b.Str(t.name).U32(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) b.U64(static_cast<uint64_t>(d));
    b.U32(t.type).U64(t.offset);
  }
  const bool usable = alignment && *alignment != 0 && *alignment <= 4096;  // bad ones pad to 32
  b.Pad(usable ? *alignment : 32).Zeros(data_bytes);
  return b.out;
}

void ExpectRefused(const std::vector<uint8_t>& image, ErrorCode code, const std::string& fragment) {
  Result<GgufFile> file = GgufFile::ParseImage(image, "bad.gguf");
  ASSERT_FALSE(file.has_value()) << "accepted; expected: " << fragment;
  EXPECT_EQ(file.error().code(), code) << file.error().ToString();
  EXPECT_NE(file.error().message().find(fragment), std::string::npos) << file.error().ToString();
}

TEST(GgufHostile, EveryTruncationIsMalformed) {
  GgufWriter w;
  w.Add("general.architecture", GgufWriterValue::String("gemma4"));
  w.Add("a.list", GgufWriterValue::Array(GgufValueType::kArray, {GgufWriterValue::I32Array({1, 2})}));
  w.Add("a.f", GgufWriterValue::F32(1.0f));
  ASSERT_TRUE(w.AddTensor("t0", GgmlType::kQ8_0, {32}, std::vector<uint8_t>(34, 1)).ok());
  ASSERT_TRUE(w.AddTensor("t1", GgmlType::kF16, {4}, std::vector<uint8_t>(8, 2)).ok());
  std::vector<uint8_t> image = *w.Encode();
  // Drop the padding after the last tensor, so that every byte of the file is needed:
  // data offset of t1 = 64 (34 bytes of t0 padded to 32), 8 bytes.
  Result<GgufFile> full = GgufFile::ParseImage(image, "full.gguf");
  ASSERT_TRUE(full.has_value()) << full.error().ToString();
  image.resize(full->data_offset() + 64 + 8);
  ASSERT_TRUE(GgufFile::ParseImage(image, "exact.gguf").has_value());
  for (size_t size = 0; size < image.size(); ++size) {
    Result<GgufFile> file = GgufFile::ParseImage(std::span(image.data(), size), "cut.gguf");
    ASSERT_FALSE(file.has_value()) << "accepted a file cut at byte " << size;
    EXPECT_EQ(file.error().code(), ErrorCode::kMalformed) << size << ": " << file.error().ToString();
    EXPECT_NE(file.error().message().find("at byte "), std::string::npos) << file.error().ToString();
  }
}

TEST(GgufHostile, RefusesBadMagicAndVersions) {
  ExpectRefused({}, ErrorCode::kMalformed, "expected the magic \"GGUF\" (47 47 55 46), found an empty file");
  ExpectRefused({'G', 'G', 'M', 'L', 3, 0, 0, 0}, ErrorCode::kMalformed, "found 47 47 4d 4c");
  Bytes v1;
  v1.Raw("GGUF", 4).U32(1).U32(0).U32(0);
  ExpectRefused(v1.out, ErrorCode::kVersionMismatch, "GGUF version 1 is not supported (supported: 2, 3)");
  Bytes v4;
  v4.Raw("GGUF", 4).U32(4).U64(0).U64(0);
  ExpectRefused(v4.out, ErrorCode::kVersionMismatch, "GGUF version 4");
  Bytes big_endian;
  big_endian.Raw("GGUF", 4).Raw("\0\0\0\3", 4).Zeros(16);
  ExpectRefused(big_endian.out, ErrorCode::kUnsupported, "big-endian GGUF file");
  Bytes v2;  // version 2 has the same layout and is read
  v2.Raw("GGUF", 4).U32(2).U64(0).U64(0);
  EXPECT_TRUE(GgufFile::ParseImage(v2.out, "v2.gguf").has_value());
}

TEST(GgufHostile, RefusesCountsLargerThanTheFile) {
  ExpectRefused(Header(1ull << 62, 0).out, ErrorCode::kMalformed, "tensor count 4611686018427387904 is more than");
  ExpectRefused(Header(0, UINT64_MAX).out, ErrorCode::kMalformed, "key/value count 18446744073709551615 is more than");
  // A key whose length runs past the end of the file.
  Bytes key = Header(0, 1);
  key.U64(1ull << 40).Raw("abc", 3).Zeros(16);
  ExpectRefused(key.out, ErrorCode::kMalformed, "a metadata key is 1099511627776 bytes long");
  Bytes key2 = Header(0, 1);
  key2.U64(100).Raw("abc", 3).Zeros(20);
  ExpectRefused(key2.out, ErrorCode::kMalformed, "a metadata key of 100 bytes needs 100 bytes but the file has");
  // A string value past the end.
  Bytes value = Header(0, 1);
  value.Str("k").U32(8).U64(UINT64_MAX).Zeros(8);
  ExpectRefused(value.out, ErrorCode::kMalformed, "key 'k' string of 18446744073709551615 bytes needs");
  // An array of 2^61 u64 values, and of 2^40 strings.
  Bytes array = Header(0, 1);
  array.Str("k").U32(9).U32(10).U64(1ull << 61).Zeros(64);
  ExpectRefused(array.out, ErrorCode::kMalformed, "is an array of 2305843009213693952 u64 values");
  Bytes strings = Header(0, 1);
  strings.Str("k").U32(9).U32(8).U64(1ull << 40).Zeros(64);
  ExpectRefused(strings.out, ErrorCode::kMalformed, "array of 1099511627776 string values");
}

TEST(GgufHostile, RefusesBadValueTypesDuplicatesAndNestingBombs) {
  Bytes type = Header(0, 1);
  type.Str("k").U32(13).U32(0);
  ExpectRefused(type.out, ErrorCode::kMalformed, "key 'k' has value type 13 (expected 0 to 12)");
  Bytes element = Header(0, 1);
  element.Str("k").U32(9).U32(99).U64(0);
  ExpectRefused(element.out, ErrorCode::kMalformed, "is an array of value type 99");
  Bytes empty_key = Header(0, 1);
  empty_key.Str("").U32(4).U32(0);
  ExpectRefused(empty_key.out, ErrorCode::kMalformed, "empty metadata key");
  Bytes duplicate = Header(0, 2);
  duplicate.Str("k").U32(4).U32(1).Str("k").U32(8).Str("x");
  ExpectRefused(duplicate.out, ErrorCode::kMalformed, "duplicate key 'k' (first value at byte 37)");
  // Arrays of arrays, 5 deep: one deeper than allowed. Each level has one element.
  Bytes bomb = Header(0, 1);
  bomb.Str("k").U32(9);
  for (int level = 0; level < 5; ++level) bomb.U32(9).U64(1);
  bomb.U32(0).U64(0).Zeros(64);
  ExpectRefused(bomb.out, ErrorCode::kMalformed, "arrays nested more than 4 deep");
  // 4 deep is fine.
  Bytes deep = Header(0, 1);
  deep.Str("k").U32(9);
  for (int level = 0; level < 3; ++level) deep.U32(9).U64(1);
  deep.U32(0).U64(2).Zeros(2);
  Result<GgufFile> ok = GgufFile::ParseImage(deep.out, "deep.gguf");
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  // A wide bomb: 2^40 empty arrays claimed in a 100-byte file.
  Bytes wide = Header(0, 1);
  wide.Str("k").U32(9).U32(9).U64(1ull << 40).Zeros(64);
  ExpectRefused(wide.out, ErrorCode::kMalformed, "array of 1099511627776 array values, needing at least 12 bytes");
}

TEST(GgufHostile, RefusesBadAlignment) {
  for (uint32_t alignment : {0u, 48u, 1u << 21}) {
    ExpectRefused(TensorFile({}, 0, alignment), ErrorCode::kMalformed,
                  "general.alignment = " + std::to_string(alignment) + "; expected a power of two");
  }
  Bytes typed = Header(0, 1);
  typed.Str("general.alignment").U32(10).U64(32);
  ExpectRefused(typed.out, ErrorCode::kMalformed, "general.alignment must be a u32, found u64");
  // Power-of-two alignments from 1 up are fine.
  EXPECT_TRUE(GgufFile::ParseImage(TensorFile({{"t", {4}, 0, 0}}, 16, 1), "a1").has_value());
}

TEST(GgufHostile, RefusesBadTensorInfos) {
  ExpectRefused(TensorFile({{"t", {1, 1, 1, 1, 1}, 0, 0}}, 32), ErrorCode::kMalformed,
                "tensor 't' has 5 dimensions (expected 1 to 4)");
  ExpectRefused(TensorFile({{"t", {}, 0, 0}}, 32), ErrorCode::kMalformed, "tensor 't' has 0 dimensions");
  ExpectRefused(TensorFile({{"t", {4, -1}, 0, 0}}, 32), ErrorCode::kMalformed, "tensor 't' has ne[1] = -1");
  ExpectRefused(TensorFile({{"t", {1ll << 40, 1ll << 40}, 0, 0}}, 32), ErrorCode::kMalformed,
                "whose element count overflows 64 bits");
  ExpectRefused(TensorFile({{"t", {1ll << 61, 1}, 0, 0}}, 32), ErrorCode::kMalformed, "has a byte size that overflows");
  ExpectRefused(TensorFile({{"t", {33}, 2, 0}}, 32), ErrorCode::kMalformed,
                "tensor 't' (q4_0) has ne[0] = 33, not a multiple of the block size 32");
  ExpectRefused(TensorFile({{"t", {4}, 41, 0}}, 32), ErrorCode::kUnsupported, "tensor 't' has ggml type 41, which kiln does not know");
  ExpectRefused(TensorFile({{"t", {4}, 4, 0}}, 32), ErrorCode::kUnsupported, "ggml type 4");
  ExpectRefused(TensorFile({{"", {4}, 0, 0}}, 32), ErrorCode::kMalformed, "empty tensor name");
  ExpectRefused(TensorFile({{std::string(2000, 'n'), {4}, 0, 0}}, 32), ErrorCode::kMalformed,
                "a tensor name is 2000 bytes long (at most 1024 allowed)");
  ExpectRefused(TensorFile({{"t", {4}, 0, 0}, {"t", {4}, 0, 32}}, 64), ErrorCode::kMalformed, "duplicate tensor 't'");
}

TEST(GgufHostile, RefusesBadTensorRanges) {
  // f32 [8] = 32 bytes.
  ExpectRefused(TensorFile({{"t", {8}, 0, 0}}, 31), ErrorCode::kMalformed,
                "tensor 't' (f32 [8]) needs 32 bytes at data offset 0, outside the data section of 31 bytes");
  ExpectRefused(TensorFile({{"t", {8}, 0, 1ull << 63}}, 64), ErrorCode::kMalformed,
                "needs 32 bytes at data offset 9223372036854775808, outside the data section of 64 bytes");
  ExpectRefused(TensorFile({{"t", {8}, 0, UINT64_MAX - 31}}, 64), ErrorCode::kMalformed, "outside the data section");
  ExpectRefused(TensorFile({{"t", {8}, 0, 8}}, 64), ErrorCode::kMalformed,
                "tensor 't' (f32 [8]) has data offset 8, not a multiple of the alignment 32");
  ExpectRefused(TensorFile({{"a", {16}, 0, 0}, {"b", {8}, 0, 32}}, 96), ErrorCode::kMalformed,
                "tensor 'b' at data offset 32 overlaps tensor 'a' (data bytes 0 to 64)");
  ExpectRefused(TensorFile({{"a", {16}, 0, 32}, {"b", {8}, 0, 0}, {"c", {8}, 0, 32}}, 96), ErrorCode::kMalformed,
                "overlaps tensor 'a'");
  // Out of order but disjoint, and zero-sized tensors anywhere inside, are fine.
  Result<GgufFile> ok = GgufFile::ParseImage(
      TensorFile({{"a", {8}, 0, 32}, {"b", {8}, 0, 0}, {"z", {0, 4}, 0, 32}}, 64), "ok.gguf");
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  EXPECT_EQ(ok->FindTensor("z")->size_bytes, 0u);
  EXPECT_EQ(ok->FindTensor("z")->data, nullptr);
  // A zero-byte tensor in a file that ends right after its info (no padding, no data section).
  Bytes unpadded = Header(1, 0);
  unpadded.Str("e").U32(1).U64(0).U32(0).U64(0);
  Result<GgufFile> empty = GgufFile::ParseImage(unpadded.out, "unpadded.gguf");
  ASSERT_TRUE(empty.has_value()) << empty.error().ToString();
  EXPECT_TRUE(empty->FindTensor("e")->bytes().empty());
}

}  // namespace
}  // namespace kiln
