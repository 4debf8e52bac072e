// MTP drafters from GGUF files (models/gemma4_gguf.h, ImportGemma4AssistantGguf): llama.cpp's
// converter applied to a fixture assistant (scripts/make_gguf_fixtures.py --assistants) drafts
// exactly what the checkpoint it came from drafts, beside a checkpoint target and a GGUF one.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/mtp_draft.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "scheduled_cases.h"

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }
// e2b/mtp_copy_centroid converted by llama.cpp: its converter drops the centroid head, so the
// file is e2b/mtp_copy's dense drafter.
const std::string kGgufAssistant = FixtureDir("gguf/e2b-mtp_copy_centroid.f32.gguf");

std::unique_ptr<LoadedModel> Load(const std::string& target, const std::string& assistant) {
  LoadOptions options;
  options.max_tokens = 16;
  options.max_context = 128;
  options.num_threads = 1;
  options.assistant = assistant;
  auto model = LoadedModel::Load(target, options);
  EXPECT_TRUE(model.has_value()) << model.error().ToString();
  return model.has_value() ? std::move(*model) : nullptr;
}

std::vector<int32_t> Prompt() {
  auto reference = ReadJsonFile(FixtureDir("e2b") + "/reference.json");
  EXPECT_TRUE(reference.has_value());
  return reference.has_value() ? (*reference)["prompt"].get<std::vector<int32_t>>() : std::vector<int32_t>{};
}

// Three rounds of three drafts from a prefill of the fixture prompt: every logit, hidden state
// and drafted token, in order.
std::vector<float> Drafts(LoadedModel& model) {
  auto session = model.NewSession();
  EXPECT_TRUE(session.has_value());
  if (!session.has_value()) return {};
  const std::vector<int32_t> prompt = Prompt();
  std::vector<float> all;
  for (int64_t t : {5, 11, 16}) {
    session->Reset();
    std::vector<float> logits(static_cast<size_t>(session->vocab_size())), hidden(static_cast<size_t>(session->runner().hidden_size()));
    EXPECT_TRUE(session->StepInto(std::span<const int32_t>(prompt.data(), static_cast<size_t>(t)), false, logits, hidden).ok());
    int32_t token = prompt[static_cast<size_t>(t)];
    for (int k = 0; k < 3; ++k) {
      const Runner::DraftEntry entry{&session->sequence(), token};
      EXPECT_TRUE(session->runner().Draft(std::span<const Runner::DraftEntry>(&entry, 1), hidden, std::span<int32_t>(&token, 1), logits).ok());
      all.insert(all.end(), logits.begin(), logits.end());
      all.insert(all.end(), hidden.begin(), hidden.end());
      all.push_back(static_cast<float>(token));
    }
  }
  return all;
}

TEST(MtpGguf, DraftsAsTheCheckpointItCameFrom) {
  ASSERT_TRUE(IsMtpAssistant(kGgufAssistant));
  EXPECT_FALSE(IsMtpAssistant(FixtureDir("gguf/e2b.f32.gguf")));  // a model, not a drafter
  auto from_gguf = Load(FixtureDir("e2b"), kGgufAssistant);
  auto from_checkpoint = Load(FixtureDir("e2b"), FixtureDir("e2b/mtp_copy"));
  ASSERT_TRUE(from_gguf && from_checkpoint);
  EXPECT_EQ(from_gguf->assistant_summary(), from_checkpoint->assistant_summary());
  const std::vector<float> gguf = Drafts(*from_gguf), checkpoint = Drafts(*from_checkpoint);
  ASSERT_EQ(gguf.size(), checkpoint.size());
  ASSERT_FALSE(gguf.empty());
  EXPECT_EQ(std::memcmp(gguf.data(), checkpoint.data(), gguf.size() * sizeof(float)), 0) << "the GGUF drafter drafts differently";
}

// A GGUF target with a GGUF drafter: speculative output is plain decoding's, greedy and seeded.
TEST(MtpGguf, GgufTargetAndDrafterGiveThePlainOutputs) {
  auto model = Load(FixtureDir("gguf/e2b.f32.gguf"), kGgufAssistant);
  ASSERT_NE(model, nullptr);
  const std::vector<int32_t> prompt = Prompt();
  for (float temperature : {0.0f, 0.9f}) {
    GenerateOptions plain;
    plain.max_new_tokens = 30;
    plain.ignore_eos = true;
    plain.sampling.temperature = temperature;
    plain.sampling.seed = 5;
    const std::vector<int32_t> expected = testing::GenerateAlone(*model, prompt, plain).tokens;
    ASSERT_EQ(expected.size(), 30u);
    GenerateOptions speculative = plain;
    speculative.speculative.type = SpeculativeType::kMtp;
    speculative.speculative.draft_max = 3;
    const GenerationResult result = testing::GenerateAlone(*model, prompt, speculative);
    EXPECT_EQ(result.tokens, expected) << "temperature " << temperature;
    EXPECT_GT(result.draft_tokens, 0);
  }
}

// A drafter GGUF that carries the centroid head (as community conversions of the E2B/E4B
// drafters do: masked_embd_centroids.weight and an i32 masked_embd_ordering) drafts exactly as
// the checkpoint with that head does.
TEST(MtpGguf, CentroidHeadFromTheFile) {
  auto file = GgufFile::Open(kGgufAssistant);
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  auto checkpoint = Checkpoint::Open(FixtureDir("e2b/mtp_copy_centroid"));
  ASSERT_TRUE(checkpoint.has_value());
  ASSERT_TRUE(checkpoint->NarrowIntegerTensors().ok());
  const TensorInfo* centroids = checkpoint->Find("masked_embedding.centroids.weight");
  const TensorInfo* ordering = checkpoint->Find("masked_embedding.token_ordering");
  ASSERT_TRUE(centroids && ordering);
  GgufWriter writer;
  for (const GgufMetadata::Entry& entry : file->metadata().entries()) writer.Add(entry.key, GgufWriterValue::From(entry.value));
  writer.Add("gemma4-assistant.masked_embedding.top_k", GgufWriterValue::U32(4));  // the fixture keeps 4 of 16
  for (const GgufTensor& tensor : file->tensors()) ASSERT_TRUE(writer.AddTensor(tensor.name, tensor.type, tensor.shape, tensor.bytes()).ok());
  ASSERT_TRUE(writer.AddTensor("masked_embd_centroids.weight", GgmlType::kF32, {centroids->shape[1], centroids->shape[0]},
                               std::span<const uint8_t>(centroids->data, centroids->size_bytes)).ok());
  ASSERT_TRUE(writer.AddTensor("masked_embd_ordering", GgmlType::kI32, {ordering->shape[0]},
                               std::span<const uint8_t>(ordering->data, ordering->size_bytes)).ok());
  const std::string path = (std::filesystem::temp_directory_path() / "kiln_mtp_centroid_drafter.gguf").string();
  ASSERT_TRUE(writer.WriteFile(path).ok());
  auto from_gguf = Load(FixtureDir("e2b"), path);
  auto from_checkpoint = Load(FixtureDir("e2b"), FixtureDir("e2b/mtp_copy_centroid"));
  ASSERT_TRUE(from_gguf && from_checkpoint);
  EXPECT_NE(from_gguf->assistant_summary().find("centroid-masked head (top 4 of 16 centroids)"), std::string::npos) << from_gguf->assistant_summary();
  const std::vector<float> gguf = Drafts(*from_gguf), expected = Drafts(*from_checkpoint);
  ASSERT_EQ(gguf.size(), expected.size());
  EXPECT_EQ(std::memcmp(gguf.data(), expected.data(), gguf.size() * sizeof(float)), 0) << "the GGUF centroid head drafts differently";
  std::filesystem::remove(path);
}

// llama.cpp's Q8_0 conversion of the same drafter: its matrices bind as q8_0 (the tensors the
// converter quantized), and speculation with it gives the plain outputs.
TEST(MtpGguf, AQ8_0DrafterStaysQ8_0) {
  auto model = Load(FixtureDir("e2b"), FixtureDir("gguf/e2b-mtp_copy_centroid.q8_0.gguf"));
  ASSERT_NE(model, nullptr);
  int64_t q8_0 = 0;
  for (const WeightBinding& weight : model->program().weights) {
    if (weight.name.rfind("mtp.", 0) == 0 && weight.dtype == DType::kQ8_0) ++q8_0;
  }
  EXPECT_EQ(q8_0, 9) << "the drafter's Q8_0 tensors";
  const std::vector<int32_t> prompt = Prompt();
  GenerateOptions plain;
  plain.max_new_tokens = 30;
  plain.ignore_eos = true;
  const std::vector<int32_t> expected = testing::GenerateAlone(*model, prompt, plain).tokens;
  GenerateOptions speculative = plain;
  speculative.speculative.type = SpeculativeType::kMtp;
  speculative.speculative.draft_max = 3;
  const GenerationResult result = testing::GenerateAlone(*model, prompt, speculative);
  EXPECT_EQ(result.tokens, expected);
  EXPECT_GT(result.draft_tokens, 0);
}

TEST(MtpGguf, RefusesAModelAsADrafter) {
  LoadOptions options;
  options.num_threads = 1;
  options.assistant = FixtureDir("gguf/e2b.f32.gguf");
  auto model = LoadedModel::Load(FixtureDir("e2b"), options);
  ASSERT_FALSE(model.has_value());
  EXPECT_EQ(model.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(model.error().message().find("general.architecture 'gemma4' is not an MTP drafter kiln reads: the drafters' architectures are gemma4-assistant"), std::string::npos)
      << model.error().message();
}

}  // namespace
}  // namespace kiln
