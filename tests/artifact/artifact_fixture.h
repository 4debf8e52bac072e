// The artifact tests' fixture: a scratch directory per test, compiling a fixture checkpoint into
// it, loading with fallback off, and editing a file's bytes or JSON header in place.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "artifact/artifact_file.h"
#include "core/hash.h"
#include "engine/artifact_compiler.h"
#include "engine/target_check.h"

namespace kiln::testing {

namespace fs = std::filesystem;

inline std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }

inline std::vector<uint8_t> ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}
inline void WriteBytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline LoadOptions SmallBounds() {
  LoadOptions options;
  options.max_tokens = 8;
  options.max_context = 64;
  options.num_threads = 2;
  return options;
}

class ArtifactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_artifact_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Compile(const std::string& source, const std::string& target = "cpu", const std::string& name = "model.kiln") {
    ArtifactCompileOptions options;
    options.target = ParseTarget(target).value();
    options.load = SmallBounds();
    const fs::path out = dir_ / name;
    Status status = CompileArtifact(source, out.string(), options);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return out;
  }

  std::string LoadError(const fs::path& path, LoadOptions options = SmallBounds()) {
    options.allow_fallback = false;
    auto model = LoadedModel::Load(path.string(), options);
    EXPECT_FALSE(model.has_value());
    return model.has_value() ? "" : model.error().ToString();
  }

  // Rewrites the JSON header in place (it must still fit before the first section).
  void RewriteHeader(const fs::path& path, const std::function<void(nlohmann::ordered_json&)>& edit) {
    std::vector<uint8_t> bytes = ReadBytes(path);
    uint64_t length;
    std::memcpy(&length, bytes.data() + 16, 8);
    auto header = nlohmann::ordered_json::parse(bytes.begin() + 32, bytes.begin() + 32 + static_cast<std::ptrdiff_t>(length));
    edit(header);
    const std::string text = header.dump();
    ASSERT_LT(32 + text.size(), 4096u);
    const uint64_t fields[2] = {text.size(), HashBytes(text.data(), text.size())};
    std::memcpy(bytes.data() + 16, fields, 16);
    std::fill(bytes.begin() + 32, bytes.begin() + 4096, 0);
    std::copy(text.begin(), text.end(), bytes.begin() + 32);
    WriteBytes(path, bytes);
  }

  fs::path dir_;
};

}  // namespace kiln::testing
