#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors_writer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> Bytes(size_t count, uint8_t fill = 1) { return std::vector<uint8_t>(count, fill); }

// A valid two-tensor image: a [2, 3] F32 (24 bytes) and a [4] BF16 (8 bytes).
std::vector<uint8_t> ValidImage() {
  static const std::vector<uint8_t> a = Bytes(24), b = Bytes(8, 2);
  const TensorToWrite tensors[] = {{"a", "F32", {2, 3}, a}, {"b", "BF16", {4}, b}};
  return EncodeSafetensors(tensors);
}

// An image with a hand-written header and `data_bytes` of data.
std::vector<uint8_t> ImageWithHeader(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> image(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) image[static_cast<size_t>(i)] = static_cast<uint8_t>(header.size() >> (8 * i));
  std::copy(header.begin(), header.end(), image.begin() + 8);
  return image;
}

std::string ParseError(const std::vector<uint8_t>& image) {
  auto result = SafetensorsFile::ParseImage(image.data(), image.size(), "x.safetensors");
  EXPECT_FALSE(result.has_value());
  return result.has_value() ? "" : result.error().ToString();
}

TEST(SafetensorsTest, ParsesValidImage) {
  const std::vector<uint8_t> image = ValidImage();
  auto tensors = SafetensorsFile::ParseImage(image.data(), image.size(), "x.safetensors");
  ASSERT_TRUE(tensors.has_value()) << tensors.error().ToString();
  ASSERT_EQ(tensors->size(), 2u);
  const TensorInfo& a = (*tensors)[0].name == "a" ? (*tensors)[0] : (*tensors)[1];
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.ShapeString(), "[2, 3]");
  EXPECT_EQ(a.size_bytes, 24u);
}

TEST(SafetensorsTest, RejectsTruncatedFiles) {
  std::vector<uint8_t> image = ValidImage();
  EXPECT_EQ(ParseError({image.begin(), image.begin() + 5}),
            "malformed: x.safetensors: file is 5 bytes, too short for the 8-byte header length (truncated?)");
  // Cut into the header: the declared header no longer fits.
  EXPECT_NE(ParseError({image.begin(), image.begin() + 20}).find("does not fit in a file of 20 bytes"), std::string::npos);
  // Cut into the data: the last tensor's range leaves the file.
  image.resize(image.size() - 4);
  EXPECT_NE(ParseError(image).find("lies outside the data section"), std::string::npos);
}

TEST(SafetensorsTest, RejectsHostileHeaders) {
  std::vector<uint8_t> huge(16, 0);
  huge[5] = 0x10;  // header length 2^40
  EXPECT_NE(ParseError(huge).find("exceeds the limit"), std::string::npos);
  EXPECT_NE(ParseError(ImageWithHeader("{not json", 0)).find("header is not a JSON object"), std::string::npos);
  EXPECT_NE(ParseError(ImageWithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8))
                .find("lies outside the data section"), std::string::npos);
  EXPECT_NE(ParseError(ImageWithHeader(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8))
                .find("tensor 'a' holds 8 bytes but F32 [3] needs 12"), std::string::npos);
  EXPECT_NE(ParseError(ImageWithHeader(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", 8))
                .find("not a non-negative integer"), std::string::npos);
  EXPECT_NE(ParseError(ImageWithHeader(R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", 8))
                .find("unknown dtype 'Q9'"), std::string::npos);
  EXPECT_NE(ParseError(ImageWithHeader(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8))
                .find("overflows"), std::string::npos);
  EXPECT_NE(ParseError(ImageWithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12))
                .find("two tensors share bytes"), std::string::npos);
  EXPECT_NE(ParseError(ImageWithHeader(R"({"a":{"dtype":"F32","shape":[2]}})", 8)).find("data_offsets"), std::string::npos);
}

TEST(SafetensorsTest, UnsupportedDtypeIsKeptButMarked) {
  auto image = ImageWithHeader(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8);
  auto tensors = SafetensorsFile::ParseImage(image.data(), image.size(), "x");
  ASSERT_TRUE(tensors.has_value());
  EXPECT_FALSE((*tensors)[0].dtype.has_value());
  EXPECT_EQ((*tensors)[0].dtype_name, "I64");
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_ckpt_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  fs::path dir_;
};

TEST_F(CheckpointTest, OpensShardedCheckpoints) {
  const std::vector<uint8_t> a = Bytes(8), b = Bytes(4);
  const TensorToWrite first[] = {{"x", "F32", {2}, a}}, second[] = {{"y", "BF16", {2}, b}};
  ASSERT_TRUE(WriteSafetensors((dir_ / "model-00001-of-00002.safetensors").string(), first).ok());
  ASSERT_TRUE(WriteSafetensors((dir_ / "model-00002-of-00002.safetensors").string(), second).ok());
  Write("model.safetensors.index.json",
        R"({"metadata":{},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}})");
  auto checkpoint = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(checkpoint.has_value()) << checkpoint.error().ToString();
  ASSERT_NE(checkpoint->Find("y"), nullptr);
  EXPECT_EQ(checkpoint->Find("y")->dtype, DType::kBF16);
  EXPECT_EQ(checkpoint->total_bytes(), 12u);
}

TEST_F(CheckpointTest, ReportsMissingFilesAndBadIndexes) {
  auto empty = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().message(), "no model.safetensors or model.safetensors.index.json in " + dir_.string());

  Write("model.safetensors.index.json", R"({"weight_map":{"x":"../../etc/passwd"}})");
  auto escape = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(escape.has_value());
  EXPECT_NE(escape.error().message().find("is not a plain file name"), std::string::npos);

  Write("model.safetensors.index.json", R"({"weight_map":{"x":"missing.safetensors"}})");
  auto missing = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace kiln
