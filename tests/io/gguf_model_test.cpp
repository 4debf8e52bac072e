// GGUF files made by llama.cpp's own converter (scripts/make_gguf_fixtures.py) from the Gemma 4
// fixtures load into the same model as the Hugging Face checkpoints: the same config, the same
// tensor bytes under the same names, logits within 1e-4 of transformers, the same greedy tokens;
// f16, Q8_0 and split files too; the tokenizer and chat template from the metadata.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "engine/gguf_source.h"
#include "engine/model_loader.h"
#include "engine/model_text.h"
#include "io/json_file.h"
#include "io/npy.h"
#include "core/quant.h"
#include "models/gemma4_family.h"

namespace kiln {
namespace {

// As the safetensors parity tests: HF's own fp32 noise is below 2e-5 on these fixtures.
constexpr float kTolerance = 1e-4f;

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }
std::string GgufFixture(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/gguf/" + name; }

std::vector<int32_t> ReferenceIds(const std::string& variant, const char* key) {
  auto document = ReadJsonFile(FixtureDir(variant) + "/reference.json");
  EXPECT_TRUE(document.has_value());
  return document.has_value() ? (*document)[key].get<std::vector<int32_t>>() : std::vector<int32_t>{};
}

std::unique_ptr<LoadedModel> Load(const std::string& path, int64_t chunk = 8, bool plan_only = false) {
  LoadOptions options;
  options.max_tokens = chunk;
  options.max_context = 64;
  options.num_threads = 2;
  options.plan_only = plan_only;
  auto model = LoadedModel::Load(path, options);
  EXPECT_TRUE(model.has_value()) << path << ": " << model.error().ToString();
  return model.has_value() ? std::move(*model) : nullptr;
}

float MaxAbsDiff(const std::vector<float>& a, const float* b) {
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// Prefill logits of every prompt position.
std::vector<float> PrefillLogits(LoadedModel& model, const std::vector<int32_t>& prompt) {
  auto session = model.NewSession();
  EXPECT_TRUE(session.has_value()) << session.error().ToString();
  if (!session.has_value()) return {};
  auto logits = session->Prefill(prompt, /*all_positions=*/true);
  EXPECT_TRUE(logits.has_value()) << logits.error().ToString();
  return logits.has_value() ? *logits : std::vector<float>{};
}

std::vector<int32_t> Greedy(LoadedModel& model, const std::vector<int32_t>& prompt, size_t count) {
  auto session = model.NewSession();
  EXPECT_TRUE(session.has_value());
  if (!session.has_value()) return {};
  auto logits = session->Prefill(prompt);
  std::vector<int32_t> generated;
  for (size_t i = 0; i < count && logits.has_value(); ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) - logits->begin());
    generated.push_back(next);
    logits = session->Step({&next, 1});
  }
  return generated;
}

class GgufVariantTest : public ::testing::TestWithParam<std::string> {};

// The metadata's config describes the checkpoint's model layer by layer.
TEST_P(GgufVariantTest, ConfigMatchesTheCheckpoints) {
  auto from_gguf = Load(GgufFixture(GetParam() + ".f32.gguf"), 8, /*plan_only=*/true);
  auto from_hf = Load(FixtureDir(GetParam()), 8, /*plan_only=*/true);
  ASSERT_NE(from_gguf, nullptr);
  ASSERT_NE(from_hf, nullptr);
  const Gemma4Config& g = *AsGemma4(from_gguf->architecture());
  const Gemma4Config& h = *AsGemma4(from_hf->architecture());
  EXPECT_EQ(g.vocab_size, h.vocab_size);
  EXPECT_EQ(g.hidden_size, h.hidden_size);
  EXPECT_EQ(g.num_heads, h.num_heads);
  EXPECT_EQ(g.sliding_window, h.sliding_window);
  EXPECT_EQ(g.max_position_embeddings, h.max_position_embeddings);
  EXPECT_FLOAT_EQ(g.rms_norm_eps, h.rms_norm_eps);
  EXPECT_FLOAT_EQ(g.final_logit_softcap, h.final_logit_softcap);
  EXPECT_EQ(g.tie_word_embeddings, h.tie_word_embeddings);
  EXPECT_EQ(g.ple_dim, h.ple_dim);
  EXPECT_EQ(g.num_kv_shared_layers, h.num_kv_shared_layers);
  EXPECT_EQ(g.num_experts, h.num_experts);
  EXPECT_EQ(g.top_k_experts, h.top_k_experts);
  EXPECT_EQ(g.moe_intermediate_size, h.moe_intermediate_size);
  ASSERT_EQ(g.layers.size(), h.layers.size());
  for (size_t i = 0; i < g.layers.size(); ++i) {
    const Gemma4LayerConfig &a = g.layers[i], &b = h.layers[i];
    EXPECT_EQ(a.attention, b.attention) << "layer " << i;
    EXPECT_EQ(a.head_dim, b.head_dim) << "layer " << i;
    EXPECT_EQ(a.num_kv_heads, b.num_kv_heads) << "layer " << i;
    EXPECT_EQ(a.k_eq_v, b.k_eq_v) << "layer " << i;
    EXPECT_EQ(a.kv_source_layer, b.kv_source_layer) << "layer " << i;
    EXPECT_EQ(a.intermediate_size, b.intermediate_size) << "layer " << i;
    EXPECT_EQ(a.window, b.window) << "layer " << i;
    EXPECT_FLOAT_EQ(a.rope_theta, b.rope_theta) << "layer " << i;
    EXPECT_EQ(a.rotary_dims, b.rotary_dims) << "layer " << i;
    EXPECT_EQ(a.moe, b.moe) << "layer " << i;
  }
}

// Every weight the program binds is the checkpoint's tensor: same name, shape and bytes (ggml's
// {in, out} is the bytes of HF's [out, in]).
TEST_P(GgufVariantTest, BindsTheCheckpointsBytes) {
  auto from_gguf = Load(GgufFixture(GetParam() + ".f32.gguf"));
  auto from_hf = Load(FixtureDir(GetParam()));
  ASSERT_NE(from_gguf, nullptr);
  ASSERT_NE(from_hf, nullptr);
  const std::vector<WeightBinding>& weights = from_gguf->program().weights;
  ASSERT_EQ(weights.size(), from_hf->program().weights.size());
  const std::vector<std::span<const uint8_t>> gguf_bytes = from_gguf->WeightBytes(), hf_bytes = from_hf->WeightBytes();
  for (size_t i = 0; i < weights.size(); ++i) {
    const WeightBinding& hf = from_hf->program().weights[i];
    EXPECT_EQ(weights[i].name, hf.name);
    EXPECT_EQ(weights[i].shape, hf.shape) << weights[i].name;
    EXPECT_EQ(weights[i].dtype, DType::kF32) << weights[i].name;
    ASSERT_EQ(gguf_bytes[i].size(), hf_bytes[i].size()) << weights[i].name;
    EXPECT_TRUE(std::equal(gguf_bytes[i].begin(), gguf_bytes[i].end(), hf_bytes[i].begin())) << weights[i].name;
  }
}

TEST_P(GgufVariantTest, PrefillAndDecodeMatchTransformers) {
  const std::string variant = GetParam();
  const std::vector<int32_t> prompt = ReferenceIds(variant, "prompt"), decode = ReferenceIds(variant, "decode_tokens");
  auto prefill = ReadNpyF32(FixtureDir(variant) + "/prefill_logits.npy");
  auto expected_decode = ReadNpyF32(FixtureDir(variant) + "/decode_logits.npy");
  ASSERT_TRUE(prefill.has_value() && expected_decode.has_value());
  for (int64_t chunk : {int64_t{5}, static_cast<int64_t>(prompt.size())}) {
    auto model = Load(GgufFixture(variant + ".f32.gguf"), chunk);
    ASSERT_NE(model, nullptr);
    const std::vector<float> logits = PrefillLogits(*model, prompt);
    ASSERT_EQ(logits.size(), prefill->values.size());
    EXPECT_LT(MaxAbsDiff(logits, prefill->values.data()), kTolerance) << "chunk " << chunk;
  }
  auto model = Load(GgufFixture(variant + ".f32.gguf"));
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value());
  ASSERT_TRUE(session->Prefill(prompt).has_value());
  std::vector<float> logits(static_cast<size_t>(session->vocab_size()));
  for (size_t j = 0; j < decode.size(); ++j) {
    ASSERT_TRUE(session->StepInto({&decode[j], 1}, false, logits).ok());
    EXPECT_LT(MaxAbsDiff(logits, expected_decode->values.data() + j * logits.size()), kTolerance) << "decode step " << j;
  }
}

TEST_P(GgufVariantTest, GreedyTokensEqualTheCheckpoints) {
  const std::string variant = GetParam();
  const std::vector<int32_t> prompt = ReferenceIds(variant, "greedy_prompt"), expected = ReferenceIds(variant, "greedy_tokens");
  auto from_gguf = Load(GgufFixture(variant + ".f32.gguf"));
  auto from_hf = Load(FixtureDir(variant));
  ASSERT_NE(from_gguf, nullptr);
  ASSERT_NE(from_hf, nullptr);
  EXPECT_EQ(Greedy(*from_gguf, prompt, expected.size()), expected);
  EXPECT_EQ(Greedy(*from_hf, prompt, expected.size()), expected);
}

INSTANTIATE_TEST_SUITE_P(LlamaCppConverted, GgufVariantTest, ::testing::Values("g31b", "e2b", "e4b", "g12b", "a26b"));

// f16 rounds the matrices (norms and scalars stay f32): the bytes are the checkpoint's values
// rounded to f16, and the logits move by the rounding only.
TEST(GgufF16Test, BindsRoundedWeightsAndStaysNearTheReference) {
  auto f16 = Load(GgufFixture("g31b.f16.gguf"));
  auto hf = Load(FixtureDir("g31b"));
  ASSERT_NE(f16, nullptr);
  ASSERT_NE(hf, nullptr);
  const std::vector<std::span<const uint8_t>> f16_bytes = f16->WeightBytes(), hf_bytes = hf->WeightBytes();
  int64_t rounded = 0;
  for (size_t i = 0; i < f16->program().weights.size(); ++i) {
    const WeightBinding& weight = f16->program().weights[i];
    const size_t count = hf_bytes[i].size() / 4;
    const auto* source = reinterpret_cast<const float*>(hf_bytes[i].data());
    if (weight.dtype == DType::kF32) {
      EXPECT_EQ(weight.shape.size(), 1u) << weight.name << ": only 1-D tensors stay f32";
      continue;
    }
    ASSERT_EQ(weight.dtype, DType::kF16) << weight.name;
    ASSERT_EQ(f16_bytes[i].size(), count * 2) << weight.name;
    const auto* half = reinterpret_cast<const uint16_t*>(f16_bytes[i].data());
    for (size_t j = 0; j < count; ++j) ASSERT_EQ(half[j], F32ToF16(source[j])) << weight.name << "[" << j << "]";
    ++rounded;
  }
  EXPECT_GT(rounded, 30);
  const std::vector<int32_t> prompt = ReferenceIds("g31b", "prompt");
  auto expected = ReadNpyF32(FixtureDir("g31b") + "/prefill_logits.npy");
  ASSERT_TRUE(expected.has_value());
  const std::vector<float> logits = PrefillLogits(*f16, prompt);
  ASSERT_EQ(logits.size(), expected->values.size());
  // f16 rounding (11-bit mantissa) moves these logits by about 1e-3; a layout error by O(1).
  EXPECT_LT(MaxAbsDiff(logits, expected->values.data()), 2e-2f);
  EXPECT_GT(MaxAbsDiff(logits, expected->values.data()), 0.0f);
}

// A split model is one model: its logits are the single file's, bit for bit.
TEST(GgufSplitTest, ThreeShardsRunAsTheSingleFile) {
  auto split = Load(GgufFixture("g31b-f16-split-00001-of-00003.gguf"));
  auto single = Load(GgufFixture("g31b.f16.gguf"));
  ASSERT_NE(split, nullptr);
  ASSERT_NE(single, nullptr);
  ASSERT_EQ(split->gguf()->model().shards().size(), 3u);
  const std::vector<int32_t> prompt = ReferenceIds("g31b", "prompt");
  EXPECT_EQ(PrefillLogits(*split, prompt), PrefillLogits(*single, prompt));
  // Only the first shard opens the model.
  LoadOptions options;
  auto second = LoadedModel::Load(GgufFixture("g31b-f16-split-00002-of-00003.gguf"), options);
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message().find("open the first shard"), std::string::npos) << second.error().ToString();
}

// llama.cpp's q8_0 outtype quantizes the tensors whose rows are whole 32-blocks (attn_output
// here); they bind as kiln's Q8_0, bit-exact, and the rest as f16/f32.
TEST(GgufQ8Test, BindsQ8_0WeightsAndRunsWhereTheKernelsDo) {
  auto model = Load(GgufFixture("g31b.q8_0.gguf"), 8, /*plan_only=*/true);
  ASSERT_NE(model, nullptr);
  int64_t q8 = 0;
  for (const WeightBinding& weight : model->program().weights) {
    if (weight.dtype != DType::kQ8_0) continue;
    ++q8;
    EXPECT_NE(weight.name.find("o_proj"), std::string::npos) << weight.name;
    EXPECT_EQ(weight.size_bytes(), weight.shape[0] * weight.shape[1] / 32 * 34) << weight.name;
  }
  EXPECT_EQ(q8, 10);  // one attn_output per layer
  // The blocks are llama.cpp's Q8_0 of the checkpoint's values: dequantized, each is within half
  // a step of the f32 weight, d = max|x| / 127 per 32-element block, plus the f16 rounding of d
  // (at most 127 * d * 2^-11 = 0.062 d): 0.57 d.
  auto hf = Load(FixtureDir("g31b"));
  ASSERT_NE(hf, nullptr);
  const std::vector<std::span<const uint8_t>> q8_bytes = model->WeightBytes(), hf_bytes = hf->WeightBytes();
  for (size_t i = 0; i < model->program().weights.size(); ++i) {
    const WeightBinding& weight = model->program().weights[i];
    if (weight.dtype != DType::kQ8_0) continue;
    const int64_t rows = weight.shape[0], columns = weight.shape[1];
    std::vector<float> row(static_cast<size_t>(columns));
    const auto* source = reinterpret_cast<const float*>(hf_bytes[i].data());
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRow(DType::kQ8_0, q8_bytes[i].data() + r * (columns / 32) * 34, columns, row.data());
      for (int64_t c = 0; c < columns; c += 32) {
        float block_max = 0.0f;
        for (int64_t k = c; k < c + 32; ++k) block_max = std::max(block_max, std::abs(source[r * columns + k]));
        for (int64_t k = c; k < c + 32; ++k) {
          ASSERT_LE(std::abs(row[static_cast<size_t>(k)] - source[r * columns + k]), block_max / 127.0f * 0.57f + 1e-6f)
              << weight.name << " row " << r << " column " << k;
        }
      }
    }
  }
  auto runnable = Load(GgufFixture("g31b.q8_0.gguf"));
  auto session = runnable ? runnable->NewSession() : Result<Session>(Error(ErrorCode::kInternal, "no model"));
  if (!session.has_value()) {
    ASSERT_EQ(session.error().code(), ErrorCode::kUnsupported) << session.error().ToString();
    GTEST_SKIP() << "the CPU backend does not run q8_0 weights yet: " << session.error().message();
  }
  const std::vector<int32_t> prompt = ReferenceIds("g31b", "prompt");
  auto expected = ReadNpyF32(FixtureDir("g31b") + "/prefill_logits.npy");
  auto logits = session->Prefill(prompt, /*all_positions=*/true);
  ASSERT_TRUE(logits.has_value()) << logits.error().ToString();
  // Q8_0 weights and activations (the CPU kernel quantizes its input rows too, as llama.cpp's
  // does) and f16 for the rest move these logits by about 0.2 (llama.cpp: 0.05-0.2 on
  // quantized files); a wrong block layout moves them by several units. The greedy tokens hold.
  EXPECT_LT(MaxAbsDiff(*logits, expected->values.data()), 0.5f);
  const std::vector<int32_t> greedy_prompt = ReferenceIds("g31b", "greedy_prompt"), greedy = ReferenceIds("g31b", "greedy_tokens");
  EXPECT_EQ(Greedy(*runnable, greedy_prompt, greedy.size()), greedy);
}

// The text side comes from the metadata: tokenizer, chat template, stop ids.
TEST(GgufTextTest, TokenizerAndChatTemplateComeFromTheFile) {
  auto model = Load(GgufFixture("g31b.f32.gguf"), 8, /*plan_only=*/true);
  ASSERT_NE(model, nullptr);
  auto text = LoadModelText(*model);
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  auto tokenizer = text->RequireTokenizer();
  ASSERT_TRUE(tokenizer.has_value()) << tokenizer.error().ToString();
  EXPECT_EQ((*tokenizer)->tokenizer.vocab_size(), 512u);
  EXPECT_TRUE((*tokenizer)->add_bos_token);
  ASSERT_FALSE(text->stop_token_ids.empty());
  EXPECT_EQ(text->stop_token_ids.front(), 1);  // <eos>
  const std::vector<int32_t> ids = EncodePlain(**tokenizer, "hello world");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids.front(), 2);  // <bos>
  EXPECT_EQ((*tokenizer)->tokenizer.Decode({ids.begin() + 1, ids.end()}), "hello world");
  auto chat = EncodeChat(**tokenizer, nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])"));
  ASSERT_TRUE(chat.has_value()) << chat.error().ToString();
  EXPECT_EQ(chat->front(), 2);
  // The synthesized config travels as config.json (artifacts carry it).
  auto config = model->SourceFile("config.json");
  ASSERT_TRUE(config.has_value());
  EXPECT_NE(config->find("\"per_layer_config\""), std::string::npos);
  EXPECT_FALSE(model->SourceFile("tokenizer.json").has_value());
}

// llama.cpp's vocab-only gemma4 file (26B-A4B hyperparameters, no tensors) plans as a bare
// config: its geometry from the metadata, no weights to run.
TEST(GgufVocabOnlyTest, PlansTheModelItsMetadataDescribes) {
  const char* home = std::getenv("HOME");
  const std::string assets = std::getenv("KILN_ASSET_DIR") ? std::getenv("KILN_ASSET_DIR") : std::string(home ? home : "") + "/.cache/kiln-assets";
  const std::string path = assets + "/llama.cpp/models/ggml-vocab-gemma-4.gguf";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) GTEST_SKIP() << path << " not fetched (scripts/fetch-tokenizer-assets.sh)";
  LoadOptions options;
  options.plan_only = true;
  options.max_context = 4096;
  auto model = LoadedModel::Load(path, options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  EXPECT_FALSE((*model)->has_weights());
  const Gemma4Config& config = *AsGemma4((*model)->architecture());
  EXPECT_EQ(config.num_layers, 30);
  EXPECT_EQ(config.hidden_size, 2816);
  EXPECT_EQ(config.vocab_size, 262144);
  EXPECT_EQ(config.num_experts, 128);
  EXPECT_EQ(config.top_k_experts, 8);
  EXPECT_EQ(config.moe_intermediate_size, 704);
  EXPECT_EQ(config.layers[5].attention, AttentionType::kFull);
  EXPECT_EQ(config.layers[5].head_dim, 512);
  EXPECT_EQ(config.layers[5].num_kv_heads, 2);
  EXPECT_EQ(config.layers[5].rotary_dims, 256);  // no rope_freqs: rope.dimension_count 512 rotates all
  EXPECT_EQ(config.layers[0].num_kv_heads, 8);
  EXPECT_EQ(config.layers[0].window, 1024);
  auto session = (*model)->NewSession();
  ASSERT_FALSE(session.has_value());
  EXPECT_NE(session.error().message().find("no weights"), std::string::npos) << session.error().ToString();
  auto text = LoadModelText(**model);
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  ASSERT_TRUE(text->tokenizer.has_value());
  EXPECT_TRUE(text->tokenizer->chat_template.has_value());
  ASSERT_GE(text->stop_token_ids.size(), 2u);
  EXPECT_EQ(text->stop_token_ids[0], 1);    // <eos>
  EXPECT_EQ(text->stop_token_ids[1], 106);  // <turn|>
}

}  // namespace
}  // namespace kiln
