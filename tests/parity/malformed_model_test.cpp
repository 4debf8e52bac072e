// Bad checkpoints give errors that say what is wrong, never a crash: a truncated safetensors
// file, a missing tensor, a tensor whose shape disagrees with the config, a malformed config and
// an unsupported one. Each case copies a valid fixture into a temp dir and breaks one thing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/model_loader.h"
#include "io/json_file.h"
#include "io/safetensors_writer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

class MalformedModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_malformed_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const fs::path source = fs::path(KILN_FIXTURES_DIR) / "g31b";
    fs::copy_file(source / "config.json", dir_ / "config.json");
    fs::copy_file(source / "model.safetensors", dir_ / "model.safetensors");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string LoadError() {
    auto model = LoadedModel::Load(dir_.string(), LoadOptions{});
    EXPECT_FALSE(model.has_value());
    return model.has_value() ? "" : model.error().ToString();
  }
  void WriteConfig(const std::string& text) { std::ofstream(dir_ / "config.json", std::ios::trunc) << text; }

  fs::path dir_;
};

TEST_F(MalformedModelTest, TruncatedSafetensors) {
  fs::resize_file(dir_ / "model.safetensors", fs::file_size(dir_ / "model.safetensors") - 1000);
  const std::string error = LoadError();
  EXPECT_NE(error.find("malformed: " + (dir_ / "model.safetensors").string() + ": tensor '"), std::string::npos) << error;
  EXPECT_NE(error.find("lies outside the data section"), std::string::npos) << error;
}

TEST_F(MalformedModelTest, MissingTensor) {
  auto checkpoint = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(checkpoint.has_value());
  std::vector<TensorToWrite> kept;
  for (const auto& [name, info] : checkpoint->tensors()) {
    if (name == "model.layers.3.mlp.up_proj.weight") continue;
    kept.push_back({name, info.dtype_name, info.shape, {info.data, info.size_bytes}});
  }
  const std::vector<uint8_t> image = EncodeSafetensors(kept);
  std::ofstream(dir_ / "model.safetensors", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
  EXPECT_EQ(LoadError(), "not found: tensor 'layers.3.mlp.up_proj.weight' is missing from the checkpoint in " + dir_.string() +
                             " (looked for model.language_model.layers.3.mlp.up_proj.weight, "
                             "model.layers.3.mlp.up_proj.weight and layers.3.mlp.up_proj.weight)");
}

TEST_F(MalformedModelTest, ShapeDisagreesWithConfig) {
  auto config = ReadJsonFile((dir_ / "config.json").string());
  ASSERT_TRUE(config.has_value());
  const int64_t width = (*config)["intermediate_size"].get<int64_t>();
  const int64_t hidden = (*config)["hidden_size"].get<int64_t>();
  (*config)["intermediate_size"] = width + 8;
  WriteConfig(config->dump());
  EXPECT_EQ(LoadError(), "malformed: tensor 'model.layers.0.mlp.gate_proj.weight' has shape [" + std::to_string(width) + ", " +
                             std::to_string(hidden) + "], but the config implies [" + std::to_string(width + 8) + ", " +
                             std::to_string(hidden) + "] (does config.json belong to these weights?)");
}

TEST_F(MalformedModelTest, MalformedConfig) {
  WriteConfig("{\"model_type\": \"gemma4_text\", ");
  EXPECT_EQ(LoadError(), "malformed: " + (dir_ / "config.json").string() + " is not valid JSON");
}

TEST_F(MalformedModelTest, UnsupportedConfig) {
  WriteConfig(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})");
  EXPECT_EQ(LoadError(), "unsupported: " + (dir_ / "config.json").string() +
                             ": config.json: model_type 'llama' is not supported; kiln supports Gemma 4 "
                             "(gemma4, gemma4_unified, gemma4_text, gemma4_unified_text)");
}

TEST_F(MalformedModelTest, MissingModelPath) {
  auto model = LoadedModel::Load((dir_ / "nope").string(), LoadOptions{});
  ASSERT_FALSE(model.has_value());
  EXPECT_EQ(model.error().ToString(), "not found: model path " + (dir_ / "nope").string() +
                                          " does not exist (expected a checkpoint directory, a .kiln artifact, a GGUF file or a config.json)");
}

TEST_F(MalformedModelTest, PromptLongerThanContext) {
  LoadOptions options;
  options.max_tokens = 4;
  options.max_context = 8;
  auto model = LoadedModel::Load(dir_.string(), options);
  ASSERT_TRUE(model.has_value());
  auto session = (*model)->NewSession();
  ASSERT_TRUE(session.has_value());
  const std::vector<int32_t> prompt(9, 5);
  auto logits = session->Prefill(prompt);
  ASSERT_FALSE(logits.has_value());
  EXPECT_EQ(logits.error().ToString(), "out of range: prompt of 9 tokens (after 0 cached) exceeds the context of 8 "
                                       "tokens; raise --ctx or shorten the prompt");
  const int32_t bad_id = 1 << 20;
  auto step = session->Step({&bad_id, 1});
  ASSERT_FALSE(step.has_value());
  EXPECT_NE(step.error().message().find("is outside the vocabulary"), std::string::npos);
}

}  // namespace
}  // namespace kiln
