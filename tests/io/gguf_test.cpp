// GGUF reader on valid files: every metadata type, tensors of several ggml types, alignment,
// split models, and a real llama.cpp vocab file when the asset cache has it. Hostile files are
// in gguf_hostile_test.cpp.
#include "io/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/gguf_model.h"
#include "io/gguf_writer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using V = GgufWriterValue;

std::vector<uint8_t> Filled(size_t count, uint8_t first) {
  std::vector<uint8_t> bytes(count);
  for (size_t i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>(first + i);
  return bytes;
}

std::string TempDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("kiln_gguf_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// One key of every value type, nested arrays, and seven tensors of different ggml types, at
// alignment 64.
GgufWriter AllTypesWriter() {
  GgufWriter w;
  w.SetAlignment(64);
  w.Add("t.u8", V::U8(200));
  w.Add("t.i8", V::I8(-5));
  w.Add("t.u16", V::U16(60000));
  w.Add("t.i16", V::I16(-300));
  w.Add("t.u32", V::U32(4000000000u));
  w.Add("t.i32", V::I32(-7));
  w.Add("t.f32", V::F32(1.5f));
  w.Add("t.bool", V::Bool(true));
  w.Add("t.string", V::String("h\xC3\xA9llo"));
  w.Add("t.u64", V::U64(1ull << 40));
  w.Add("t.i64", V::I64(-(1ll << 40)));
  w.Add("t.f64", V::F64(2.25));
  w.Add("t.strings", V::StringArray({"a", "", "ccc"}));
  w.Add("t.ints", V::I32Array({1, -2, 3}));
  w.Add("t.u16s", V::Array(GgufValueType::kU16, {V::U16(7), V::U16(65535)}));
  w.Add("t.floats", V::F32Array({0.5f, -1.0f}));
  w.Add("t.f64s", V::Array(GgufValueType::kF64, {V::F64(0.25)}));
  w.Add("t.bools", V::Array(GgufValueType::kBool, {V::Bool(true), V::Bool(false), V::Bool(true)}));
  w.Add("t.empty", V::Array(GgufValueType::kString, {}));
  // [[1, 2], [], [3]] of u8, and an array of string arrays.
  w.Add("t.nested", V::Array(GgufValueType::kArray,
                             {V::Array(GgufValueType::kU8, {V::U8(1), V::U8(2)}),
                              V::Array(GgufValueType::kU8, {}), V::Array(GgufValueType::kU8, {V::U8(3)})}));
  w.Add("t.nested_strings", V::Array(GgufValueType::kArray, {V::StringArray({"x", "yz"})}));
  // Bytes = elements / block * block bytes.
  EXPECT_TRUE(w.AddTensor("f32", GgmlType::kF32, {4, 2}, Filled(32, 1)).ok());       // 8 * 4
  EXPECT_TRUE(w.AddTensor("f16", GgmlType::kF16, {8}, Filled(16, 2)).ok());          // 8 * 2
  EXPECT_TRUE(w.AddTensor("bf16", GgmlType::kBF16, {3}, Filled(6, 3)).ok());         // 3 * 2
  EXPECT_TRUE(w.AddTensor("q4_0", GgmlType::kQ4_0, {64, 2}, Filled(72, 4)).ok());    // 4 blocks * 18
  EXPECT_TRUE(w.AddTensor("q8_0", GgmlType::kQ8_0, {32, 1, 1, 3}, Filled(102, 5)).ok());  // 3 * 34
  EXPECT_TRUE(w.AddTensor("q4_k", GgmlType::kQ4_K, {256}, Filled(144, 6)).ok());     // 1 * 144
  EXPECT_TRUE(w.AddTensor("q6_k", GgmlType::kQ6_K, {256, 2}, Filled(420, 7)).ok());  // 2 * 210
  return w;
}

TEST(GgmlTypes, BlockGeometryFollowsGgml) {
  struct Expected { uint32_t id; int64_t block, bytes; };
  const Expected table[] = {{0, 1, 4},     {1, 1, 2},      {30, 1, 2},     {2, 32, 18},  {3, 32, 20},
                            {6, 32, 22},   {7, 32, 24},    {8, 32, 34},    {10, 256, 84}, {11, 256, 110},
                            {12, 256, 144}, {13, 256, 176}, {14, 256, 210}, {15, 256, 292}};
  for (const Expected& e : table) {
    const GgmlTypeInfo* info = FindGgmlType(e.id);
    ASSERT_NE(info, nullptr) << e.id;
    EXPECT_EQ(info->block_elements, e.block) << info->name;
    EXPECT_EQ(info->block_bytes, e.bytes) << info->name;
  }
  for (uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 41u, 1000u}) {
    EXPECT_EQ(FindGgmlType(removed), nullptr) << removed;
  }
  EXPECT_EQ(GgmlTypeName(14), "q6_K");
  EXPECT_EQ(GgmlTypeName(41), "type 41");
  EXPECT_EQ(DTypeFromGgml(GgmlType::kBF16), DType::kBF16);
  EXPECT_EQ(DTypeFromGgml(GgmlType::kF16), DType::kF16);
  EXPECT_FALSE(DTypeFromGgml(GgmlType::kQ4_0).has_value());
}

TEST(GgufWriterTest, RefusesInconsistentInput) {
  GgufWriter w;
  // q4_0 [64] is 2 blocks of 18 bytes, not 32 bytes; ne[0] = 16 is not a whole block.
  EXPECT_EQ(w.AddTensor("t", GgmlType::kQ4_0, {64}, Filled(32, 0)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("t", GgmlType::kQ4_0, {16}, Filled(9, 0)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("t", GgmlType::kF32, {1, 1, 1, 1, 1}, Filled(4, 0)).code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(w.AddTensor("t", GgmlType::kF32, {1}, Filled(4, 0)).ok());
  ASSERT_TRUE(w.AddTensor("t", GgmlType::kF32, {1}, Filled(4, 0)).ok());  // caught by Encode
  EXPECT_NE(w.Encode().error().message().find("duplicate GGUF tensor 't'"), std::string::npos);
  GgufWriter keys;
  keys.Add("k", V::U8(1));
  keys.Add("k", V::U8(2));
  EXPECT_NE(keys.Encode().error().message().find("duplicate GGUF key 'k'"), std::string::npos);
  GgufWriter mixed;
  mixed.Add("k", V::Array(GgufValueType::kU8, {V::U8(1), V::I8(2)}));
  EXPECT_EQ(mixed.Encode().error().code(), ErrorCode::kInvalidArgument);
}

TEST(GgufReader, ReadsEveryMetadataType) {
  Result<std::vector<uint8_t>> image = AllTypesWriter().Encode();
  ASSERT_TRUE(image.has_value()) << image.error().ToString();
  Result<GgufFile> file = GgufFile::ParseImage(*image, "all.gguf");
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  const GgufMetadata& m = file->metadata();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(m.entries().size(), 22u);  // 21 keys + general.alignment
  EXPECT_EQ(m.entries()[1].key, "t.u8");
  EXPECT_EQ(*m.GetU32("t.u8"), 200u);  // integers widen
  EXPECT_EQ(*m.GetI32("t.i8"), -5);
  EXPECT_EQ(*m.GetU32("t.u16"), 60000u);
  EXPECT_EQ(*m.GetI64("t.i16"), -300);
  EXPECT_EQ(*m.GetU32("t.u32"), 4000000000u);
  EXPECT_EQ(*m.GetI32("t.i32"), -7);
  EXPECT_EQ(*m.GetF32("t.f32"), 1.5f);
  EXPECT_EQ(*m.GetBool("t.bool"), true);
  EXPECT_EQ(*m.GetString("t.string"), "h\xC3\xA9llo");
  EXPECT_EQ(*m.GetU64("t.u64"), 1ull << 40);
  EXPECT_EQ(*m.GetI64("t.i64"), -(1ll << 40));
  EXPECT_EQ(*m.GetF32("t.f64"), 2.25f);
  EXPECT_EQ(*m.GetStringArray("t.strings"), (std::vector<std::string_view>{"a", "", "ccc"}));
  EXPECT_EQ(*m.GetIntArray("t.ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*m.GetIntArray("t.u16s"), (std::vector<int64_t>{7, 65535}));
  EXPECT_EQ(*m.GetF32Array("t.floats"), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(*m.GetF32Array("t.f64s"), (std::vector<float>{0.25f}));
  EXPECT_EQ(*m.GetBoolArray("t.bools"), (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(m.GetStringArray("t.empty")->empty());

  const GgufValue* nested = m.Find("t.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->element_type(), GgufValueType::kArray);
  const std::vector<GgufValue> rows = nested->Elements();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].count(), 2u);
  EXPECT_EQ(*rows[0].Elements()[1].AsInt64(), 2);
  EXPECT_EQ(rows[1].count(), 0u);
  EXPECT_EQ(*rows[2].Elements()[0].AsInt64(), 3);
  const std::vector<GgufValue> string_rows = m.Find("t.nested_strings")->Elements();
  ASSERT_EQ(string_rows.size(), 1u);
  EXPECT_EQ(*string_rows[0].Elements()[1].AsString(), "yz");
  // The key after the nested arrays still reads, so the walk over them was exact.
  EXPECT_EQ(m.entries().back().key, "t.nested_strings");
}

TEST(GgufReader, GettersRefuseMissingKeysAndWrongTypes) {
  Result<std::vector<uint8_t>> image = AllTypesWriter().Encode();
  ASSERT_TRUE(image.has_value());
  Result<GgufFile> file = GgufFile::ParseImage(*image, "all.gguf");
  ASSERT_TRUE(file.has_value());
  const GgufMetadata& m = file->metadata();
  Result<uint32_t> missing = m.GetU32("gemma4.block_count");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("'gemma4.block_count' (u32) not found"), std::string::npos);

  auto expect_wrong = [](const auto& result, const std::string& fragment) {
    ASSERT_FALSE(result.has_value()) << fragment;
    EXPECT_EQ(result.error().code(), ErrorCode::kMalformed);
    EXPECT_NE(result.error().message().find(fragment), std::string::npos) << result.error().message();
  };
  expect_wrong(m.GetString("t.u32"), "expected string, found u32");
  expect_wrong(m.GetU32("t.i8"), "expected u32 (the value -5 does not fit)");
  expect_wrong(m.GetI32("t.u32"), "the value 4000000000 does not fit");
  expect_wrong(m.GetU32("t.f32"), "expected u32, found f32");
  expect_wrong(m.GetBool("t.u8"), "expected bool, found u8");
  expect_wrong(m.GetF32("t.i32"), "expected f32, found i32");
  expect_wrong(m.GetStringArray("t.ints"), "expected array of string, found array of i32");
  expect_wrong(m.GetIntArray("t.string"), "expected array of integers, found string");
  expect_wrong(m.GetF32Array("t.bools"), "found array of bool");
}

TEST(GgufReader, TensorsHaveShapeTypeAndAlignedBytes) {
  Result<std::vector<uint8_t>> image = AllTypesWriter().Encode();
  ASSERT_TRUE(image.has_value());
  Result<GgufFile> file = GgufFile::ParseImage(*image, "all.gguf");
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->data_offset() % 64, 0u);
  ASSERT_EQ(file->tensors().size(), 7u);
  struct Expected { const char* name; GgmlType type; std::vector<int64_t> shape; size_t bytes; uint8_t first; };
  const Expected table[] = {{"f32", GgmlType::kF32, {4, 2}, 32, 1},    {"f16", GgmlType::kF16, {8}, 16, 2},
                            {"bf16", GgmlType::kBF16, {3}, 6, 3},      {"q4_0", GgmlType::kQ4_0, {64, 2}, 72, 4},
                            {"q8_0", GgmlType::kQ8_0, {32, 1, 1, 3}, 102, 5},
                            {"q4_k", GgmlType::kQ4_K, {256}, 144, 6}, {"q6_k", GgmlType::kQ6_K, {256, 2}, 420, 7}};
  for (const Expected& e : table) {
    Result<const GgufTensor*> t = file->GetTensor(e.name);
    ASSERT_TRUE(t.has_value()) << e.name;
    EXPECT_EQ((*t)->type, e.type) << e.name;
    EXPECT_EQ((*t)->shape, e.shape) << e.name;
    EXPECT_EQ((*t)->size_bytes, e.bytes) << e.name;
    EXPECT_EQ((*t)->offset_bytes % 64, 0u) << e.name;
    EXPECT_EQ((*t)->bytes().front(), e.first) << e.name;
    EXPECT_EQ((*t)->bytes().back(), static_cast<uint8_t>(e.first + e.bytes - 1)) << e.name;
    EXPECT_EQ(static_cast<size_t>((*t)->data - image->data()) % 64, 0u) << e.name;
  }
  EXPECT_EQ(file->FindTensor("q6_k")->num_elements(), 512);
  EXPECT_EQ(file->FindTensor("q6_k")->ShapeString(), "[256, 2]");
  Result<const GgufTensor*> absent = file->GetTensor("output.weight");
  ASSERT_FALSE(absent.has_value());
  EXPECT_EQ(absent.error().code(), ErrorCode::kNotFound);
}

TEST(GgufReader, OpensAMappedFileAndDefaultsTheAlignment) {
  GgufWriter w;
  w.Add("general.architecture", V::String("gemma4"));
  ASSERT_TRUE(w.AddTensor("a", GgmlType::kF32, {3}, Filled(12, 9)).ok());
  ASSERT_TRUE(w.AddTensor("b", GgmlType::kQ8_0, {32}, Filled(34, 1)).ok());
  const std::string path = TempDir("mapped") + "/m.gguf";
  ASSERT_TRUE(w.WriteFile(path).ok());
  Result<GgufFile> file = GgufFile::Open(path);
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->FindTensor("b")->offset_bytes, 32u);  // 12 bytes of "a", padded to 32
  EXPECT_EQ(*file->metadata().GetString("general.architecture"), "gemma4");
  // Moving the file keeps the views valid (they point into the mapping).
  GgufFile moved = std::move(*file);
  EXPECT_EQ(moved.FindTensor("a")->bytes()[11], 9 + 11);
  Result<GgufFile> absent = GgufFile::Open(path + ".absent");
  ASSERT_FALSE(absent.has_value());
  EXPECT_EQ(absent.error().code(), ErrorCode::kNotFound);
}

TEST(GgufSplit, ParsesAndFormatsShardNames) {
  std::optional<GgufSplitName> name = ParseGgufSplitName("gemma-4-31b-00002-of-00003.gguf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->prefix, "gemma-4-31b");
  EXPECT_EQ(name->shard, 2u);
  EXPECT_EQ(name->count, 3u);
  EXPECT_EQ(GgufSplitFileName("m", 1, 3), "m-00001-of-00003.gguf");
  for (const char* bad : {"model.gguf", "-00001-of-00003.gguf", "m-0001-of-00003.gguf", "m-00001-of-0000x.gguf",
                          "m-00001_of-00003.gguf", "m-00001-of-00003.bin"}) {
    EXPECT_FALSE(ParseGgufSplitName(bad).has_value()) << bad;
  }
}

// Writes shard `index` (0-based) of `count` into `dir`, holding tensors named by `names`.
void WriteShard(const std::string& dir, uint32_t index, uint32_t count, const std::vector<std::string>& names,
                uint64_t total_tensors) {
  GgufWriter w;
  if (index == 0) w.Add("general.architecture", V::String("gemma4"));
  w.Add("split.no", V::U16(static_cast<uint16_t>(index)));
  w.Add("split.count", V::U16(static_cast<uint16_t>(count)));
  w.Add("split.tensors.count", V::I32(static_cast<int32_t>(total_tensors)));
  for (const std::string& name : names) {
    ASSERT_TRUE(w.AddTensor(name, GgmlType::kF32, {2}, Filled(8, static_cast<uint8_t>(index * 10))).ok());
  }
  ASSERT_TRUE(w.WriteFile(dir + "/" + GgufSplitFileName("m", index + 1, count)).ok());
}

TEST(GgufSplit, OpensAllShardsAsOneTensorTable) {
  const std::string dir = TempDir("split");
  WriteShard(dir, 0, 3, {"a", "b"}, 4);
  WriteShard(dir, 1, 3, {"c"}, 4);
  WriteShard(dir, 2, 3, {"d"}, 4);
  Result<GgufModel> model = GgufModel::Open(dir + "/m-00001-of-00003.gguf");
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  EXPECT_EQ(model->shards().size(), 3u);
  EXPECT_EQ(model->tensors().size(), 4u);
  EXPECT_EQ(*model->metadata().GetString("general.architecture"), "gemma4");
  EXPECT_EQ(model->FindTensor("c")->shard, 1u);
  EXPECT_EQ(model->FindTensor("d")->shard, 2u);
  EXPECT_EQ(model->FindTensor("d")->bytes()[0], 20);
  EXPECT_EQ(model->total_tensor_bytes(), 32u);
  EXPECT_EQ(model->GetTensor("e").error().code(), ErrorCode::kNotFound);

  Result<GgufModel> second = GgufModel::Open(dir + "/m-00002-of-00003.gguf");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(second.error().message().find("open the first shard, m-00001-of-00003.gguf"), std::string::npos)
      << second.error().message();

  fs::remove(dir + "/m-00003-of-00003.gguf");
  Result<GgufModel> missing = GgufModel::Open(dir + "/m-00001-of-00003.gguf");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("shard 3 of 3 is missing"), std::string::npos) << missing.error().message();
  EXPECT_NE(missing.error().message().find("m-00003-of-00003.gguf"), std::string::npos);
}

TEST(GgufSplit, RefusesInconsistentShards) {
  auto open_error = [](const std::string& dir) {
    Result<GgufModel> model = GgufModel::Open(dir + "/m-00001-of-00002.gguf");
    EXPECT_FALSE(model.has_value());
    return model.has_value() ? std::string() : model.error().ToString();
  };
  std::string dir = TempDir("split_count");
  WriteShard(dir, 0, 2, {"a"}, 3);  // says 3 tensors, the shards hold 2
  WriteShard(dir, 1, 2, {"b"}, 3);
  EXPECT_NE(open_error(dir).find("split.tensors.count = 3 but the 2 shards hold 2 tensors"), std::string::npos);

  dir = TempDir("split_duplicate");
  WriteShard(dir, 0, 2, {"a"}, 2);
  WriteShard(dir, 1, 2, {"a"}, 2);
  EXPECT_NE(open_error(dir).find("tensor 'a' is also in"), std::string::npos);

  dir = TempDir("split_number");
  WriteShard(dir, 0, 2, {"a"}, 2);
  WriteShard(dir, 0, 2, {"b"}, 2);  // shard 0's keys under the second name
  fs::rename(dir + "/m-00001-of-00002.gguf", dir + "/m-00002-of-00002.gguf");
  WriteShard(dir, 0, 2, {"a"}, 2);
  EXPECT_NE(open_error(dir).find("has split.no = 0, split.count = 2; its name says split.no = 1"), std::string::npos);

  // A single plain file opens as a one-shard model.
  dir = TempDir("plain");
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor("x", GgmlType::kF16, {4}, Filled(8, 0)).ok());
  ASSERT_TRUE(w.WriteFile(dir + "/plain.gguf").ok());
  Result<GgufModel> plain = GgufModel::Open(dir + "/plain.gguf");
  ASSERT_TRUE(plain.has_value()) << plain.error().ToString();
  EXPECT_EQ(plain->shards().size(), 1u);
  EXPECT_EQ(plain->FindTensor("x")->size_bytes, 8u);
}

// The Gemma 4 vocab GGUF from llama.cpp (scripts/fetch-tokenizer-assets.sh); skipped without it.
TEST(GgufReader, ReadsTheRealGemma4VocabFile) {
  const char* env = std::getenv("KILN_ASSET_DIR");
  const char* home = std::getenv("HOME");
  const fs::path base = env ? fs::path(env) : fs::path(home ? home : "") / ".cache" / "kiln-assets";
  const fs::path path = base / "llama.cpp" / "models" / "ggml-vocab-gemma-4.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not cached (scripts/fetch-tokenizer-assets.sh)";
  Result<GgufFile> file = GgufFile::Open(path.string());
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  const GgufMetadata& m = file->metadata();
  EXPECT_EQ(*m.GetString("general.architecture"), "gemma4");
  EXPECT_EQ(*m.GetString("tokenizer.ggml.model"), "gemma4");
  EXPECT_EQ(m.GetStringArray("tokenizer.ggml.tokens")->size(), 262144u);
  EXPECT_EQ(m.GetStringArray("tokenizer.ggml.merges")->size(), 514906u);
  EXPECT_EQ(*m.GetU32("tokenizer.ggml.bos_token_id"), 2u);
  EXPECT_EQ(*m.GetU32("tokenizer.ggml.eos_token_id"), 1u);
  EXPECT_EQ(*m.GetU32("gemma4.block_count"), 30u);
  EXPECT_EQ(*m.GetU32("gemma4.attention.sliding_window"), 1024u);
  EXPECT_FALSE(m.GetString("tokenizer.chat_template")->empty());
}

}  // namespace
}  // namespace kiln
