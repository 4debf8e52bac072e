// JSON that kiln did not write is refused when an object holds a key twice: parsers disagree on
// which value wins (nlohmann keeps the last, others the first), so a file could mean two things.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "engine/model_loader.h"
#include "engine/model_text.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

TEST(JsonDuplicateKeys, RefusedAtAnyDepthNamingTheKey) {
  EXPECT_TRUE(RejectDuplicateKeys(R"({"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]})", "x").ok());
  EXPECT_EQ(RejectDuplicateKeys(R"({"a": 1, "a": 2})", "config.json").error().message(),
            "config.json has the key \"a\" twice in one object");
  EXPECT_EQ(RejectDuplicateKeys(R"({"outer": {"k": [1, {"deep": 1, "deep": 2}]}})", "f").error().message(),
            "f has the key \"deep\" twice in one object");
  EXPECT_EQ(ParseJson(R"({"vocab_size": 5, "vocab_size": 7})", "config.json").error().code(), ErrorCode::kMalformed);
  EXPECT_TRUE(RejectDuplicateKeys("not json", "f").ok());  // the parser reports that
}

class DuplicateKeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_duplicate_keys." + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const char* name : {"config.json", "generation_config.json", "model.safetensors"}) {
      fs::copy_file(fs::path(KILN_FIXTURES_DIR) / "g31b" / name, dir_ / name);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }

  fs::path dir_;
};

TEST_F(DuplicateKeyFileTest, ConfigGenerationConfigAndSafetensorsHeader) {
  LoadOptions options;
  options.max_context = 32;
  options.max_tokens = 8;
  ASSERT_TRUE(LoadedModel::Load(dir_.string(), options).has_value());
  // config.json: the second value would silently win.
  std::ifstream in(dir_ / "config.json");
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const size_t brace = config.find('{');
  Write("config.json", config.substr(0, brace + 1) + "\"num_hidden_layers\": 2, " + config.substr(brace + 1));
  auto model = LoadedModel::Load(dir_.string(), options);
  ASSERT_FALSE(model.has_value());
  EXPECT_EQ(model.error().message(), (dir_ / "config.json").string() + " has the key \"num_hidden_layers\" twice in one object");
  Write("config.json", config);
  // generation_config.json (read with the text side).
  Write("generation_config.json", R"({"eos_token_id": 1, "eos_token_id": 2})");
  model = LoadedModel::Load(dir_.string(), options);
  ASSERT_TRUE(model.has_value());
  auto text = LoadModelText(**model);
  ASSERT_FALSE(text.has_value());
  EXPECT_EQ(text.error().message(), "generation_config.json has the key \"eos_token_id\" twice in one object");
  // A safetensors header naming a tensor twice.
  const std::string header = R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})";
  std::ofstream file(dir_ / "dup.safetensors", std::ios::binary);
  const uint64_t length = header.size();
  file.write(reinterpret_cast<const char*>(&length), 8);
  file << header;
  file.write("\0\0\0\0", 4);
  file.close();
  auto opened = SafetensorsFile::Open((dir_ / "dup.safetensors").string());
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().message(), (dir_ / "dup.safetensors").string() + " header has the key \"w\" twice in one object");
}

}  // namespace
}  // namespace kiln
