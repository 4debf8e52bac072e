// .kiln files compiled from GGUF files: the same logits as running the GGUF (JIT), the GGUF's own
// tokenizer carried inside, a split GGUF from its first shard, and the GGUF as the source a
// damaged artifact falls back to.
#include <gtest/gtest.h>

#include <cstring>

#include "artifact_fixture.h"
#include "engine/model_text.h"
#include "runtime/session.h"

namespace kiln::testing {
namespace {

std::string Gguf(const std::string& name) { return FixtureDir("gguf/" + name); }

std::vector<float> PromptLogits(LoadedModel& model, const std::vector<int32_t>& prompt) {
  auto session = model.NewSession();
  EXPECT_TRUE(session.has_value()) << session.error().ToString();
  if (!session) return {};
  auto logits = session->Prefill(prompt, /*all_positions=*/true);
  EXPECT_TRUE(logits.has_value()) << logits.error().ToString();
  return logits ? *logits : std::vector<float>{};
}

TEST_F(ArtifactTest, CompiledFromGgufRunsAsTheGgufWithItsTokenizer) {
  for (const std::string file : {"g31b.f32.gguf", "g31b.q8_0.gguf", "g31b-f16-split-00001-of-00003.gguf"}) {
    SCOPED_TRACE(file);
    const fs::path artifact = Compile(Gguf(file));
    auto jit = LoadedModel::Load(Gguf(file), SmallBounds());
    LoadOptions no_fallback = SmallBounds();
    no_fallback.allow_fallback = false;
    auto aot = LoadedModel::Load(artifact.string(), no_fallback);
    ASSERT_TRUE(jit.has_value()) << jit.error().ToString();
    ASSERT_TRUE(aot.has_value()) << aot.error().ToString();
    ASSERT_NE((*aot)->artifact(), nullptr);

    // The tokenizer inside the artifact is the GGUF's: same ids, same text back, same stops.
    auto jit_text = LoadModelText(**jit);
    auto aot_text = LoadModelText(**aot);
    ASSERT_TRUE(jit_text.has_value()) << jit_text.error().ToString();
    ASSERT_TRUE(aot_text.has_value()) << aot_text.error().ToString();
    ASSERT_TRUE(jit_text->tokenizer.has_value());
    ASSERT_TRUE(aot_text->tokenizer.has_value()) << "the artifact lost the GGUF's tokenizer";
    const std::string sample = "The jury said that the city of Atlanta had been fined 12,345 dollars.";
    const auto want = jit_text->tokenizer->tokenizer.Encode(sample);
    const auto got = aot_text->tokenizer->tokenizer.Encode(sample);
    EXPECT_EQ(got, want);
    EXPECT_GT(want.size(), 4u);
    EXPECT_EQ(aot_text->tokenizer->tokenizer.Decode(got, false), jit_text->tokenizer->tokenizer.Decode(want, false));
    EXPECT_EQ(aot_text->stop_token_ids, jit_text->stop_token_ids);
    EXPECT_EQ(aot_text->tokenizer->chat_template.has_value(), jit_text->tokenizer->chat_template.has_value());

    // And the same program: bit-identical logits of every prompt position.
    std::vector<int32_t> prompt(want.begin(), want.end());
    if (prompt.size() > 8) prompt.resize(8);  // SmallBounds: chunks of 8
    const std::vector<float> a = PromptLogits(**jit, prompt), b = PromptLogits(**aot, prompt);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "JIT and AOT logits differ";
  }
}

TEST_F(ArtifactTest, AnArtifactOfAGgufFallsBackToThatGguf) {
  // A copy of the GGUF as the recorded source, then an artifact this kiln cannot read.
  const fs::path source = dir_ / "model.gguf";
  fs::copy_file(Gguf("g31b.f32.gguf"), source);
  const fs::path artifact = Compile(source.string());
  std::vector<uint8_t> bytes = ReadBytes(artifact);
  const uint64_t newer = 9;
  std::memcpy(bytes.data() + 8, &newer, 8);
  WriteBytes(artifact, bytes);
  std::string notice;
  LoadOptions options = SmallBounds();
  options.on_notice = [&](const std::string& text) { notice = text; };
  auto model = LoadedModel::Load(artifact.string(), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  EXPECT_EQ((*model)->artifact(), nullptr);  // compiled from the GGUF
  EXPECT_NE(notice.find("compiling from the source checkpoint " + fs::absolute(source).lexically_normal().string()), std::string::npos)
      << notice;
  // A different file at the source path is another model: not substituted.
  fs::copy_file(Gguf("g12b.f32.gguf"), source, fs::copy_options::overwrite_existing);
  auto other = LoadedModel::Load(artifact.string(), options);
  ASSERT_FALSE(other.has_value());
  EXPECT_NE(other.error().message().find("is not the one"), std::string::npos) << other.error().message();
}

}  // namespace
}  // namespace kiln::testing
