#include "models/gemma4_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/json_file.h"

namespace kiln {
namespace {

using json = nlohmann::json;

Gemma4Config Load(const std::string& path) {
  auto config = LoadGemma4Config(path);
  EXPECT_TRUE(config.has_value()) << config.error().ToString();
  return config.has_value() ? *config : Gemma4Config{};
}

std::string Fixture(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name + "/config.json"; }
std::string RealConfig(const std::string& name) { return std::string(KILN_TEST_DATA_DIR) + "/" + name; }

std::string ParseError(const json& document) {
  auto config = ParseGemma4Config(document);
  EXPECT_FALSE(config.has_value());
  return config.has_value() ? "" : config.error().ToString();
}

// The smallest valid gemma4_text config: 2 layers, the second full.
json Minimal() {
  return json{{"model_type", "gemma4_text"}, {"vocab_size", 16}, {"hidden_size", 8}, {"intermediate_size", 8},
              {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"head_dim", 4},
              {"global_head_dim", 8}, {"hidden_size_per_layer_input", 0},
              {"layer_types", {"sliding_attention", "full_attention"}}};
}

TEST(Gemma4ConfigTest, Real12BShapes) {
  const Gemma4Config config = Load(RealConfig("gemma-4-12b-config.json"));
  EXPECT_EQ(config.model_type, "gemma4_unified_text");
  EXPECT_EQ(config.num_layers, 48);
  EXPECT_EQ(config.sliding_window, 1024);
  for (const Gemma4LayerConfig& layer : config.layers) {
    const bool full = (layer.self_index + 1) % 6 == 0;  // 5, 11, ..., 47
    EXPECT_EQ(layer.attention == AttentionType::kFull, full) << layer.self_index;
    EXPECT_EQ(layer.head_dim, full ? 512 : 256);
    EXPECT_EQ(layer.num_kv_heads, full ? 1 : 8);
    EXPECT_EQ(layer.k_eq_v, full);
    // Proportional RoPE: int(0.25 * 512 // 2) = 64 frequencies; sliding: all 128.
    EXPECT_EQ(layer.rotary_dims, full ? 64 : 128);
    EXPECT_FLOAT_EQ(layer.rope_theta, full ? 1e6f : 1e4f);
    EXPECT_EQ(layer.window, full ? 0 : 1024);
  }
}

TEST(Gemma4ConfigTest, RealE2BSharingAndDoubleWideMlp) {
  const Gemma4Config config = Load(RealConfig("gemma-4-e2b-config.json"));
  ASSERT_EQ(config.num_layers, 35);
  EXPECT_EQ(config.first_kv_shared_layer(), 15);
  EXPECT_EQ(config.ple_dim, 256);
  for (const Gemma4LayerConfig& layer : config.layers) {
    if (layer.self_index < 15) {
      EXPECT_FALSE(layer.kv_shared());
      EXPECT_EQ(layer.intermediate_size, 6144);
    } else {
      // Shared layers read the last non-shared layer of their type: 13 (sliding), 14 (full).
      EXPECT_EQ(layer.kv_source_layer, layer.attention == AttentionType::kFull ? 14 : 13) << layer.self_index;
      EXPECT_EQ(layer.intermediate_size, 12288);
    }
  }
}

TEST(Gemma4ConfigTest, HubKeysAndPerLayerConfigAgree) {
  // g12b was saved by transformers 5.17 (per_layer_config); the legacy copy uses the Hub keys.
  const Gemma4Config saved = Load(Fixture("g12b"));
  const Gemma4Config legacy = Load(Fixture("g12b_legacy_config"));
  ASSERT_EQ(saved.layers.size(), legacy.layers.size());
  for (size_t i = 0; i < saved.layers.size(); ++i) {
    EXPECT_EQ(saved.layers[i].head_dim, legacy.layers[i].head_dim) << i;
    EXPECT_EQ(saved.layers[i].num_kv_heads, legacy.layers[i].num_kv_heads) << i;
    EXPECT_EQ(saved.layers[i].k_eq_v, legacy.layers[i].k_eq_v) << i;
  }
}

TEST(Gemma4ConfigTest, NestedTextConfigForm) {
  const Gemma4Config nested = Load(Fixture("e4b_multimodal"));
  const Gemma4Config flat = Load(Fixture("e4b"));
  EXPECT_EQ(nested.architecture, "Gemma4ForConditionalGeneration");
  EXPECT_EQ(nested.num_layers, flat.num_layers);
  EXPECT_EQ(nested.ple_dim, flat.ple_dim);
  EXPECT_EQ(nested.num_kv_shared_layers, flat.num_kv_shared_layers);
}

TEST(Gemma4ConfigTest, DefaultsAndTruncation) {
  auto config = ParseGemma4Config(Minimal());
  ASSERT_TRUE(config.has_value()) << config.error().ToString();
  EXPECT_EQ(config->layers[1].head_dim, 8);  // global_head_dim
  EXPECT_EQ(config->layers[1].num_kv_heads, 1);
  EXPECT_EQ(config->final_logit_softcap, 0.0f);  // class default: none
  auto one = TruncateLayers(*config, 1);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->layers.size(), 1u);
  auto zero = TruncateLayers(*config, 0);
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error().message(), "--num-layers 0 is outside [1, 2]");
}

TEST(Gemma4ConfigTest, PerLayerConfigKeysMayBeZeroPadded) {
  // transformers 5.17 writes "05", "11" for models of 10+ layers.
  json config = Minimal();
  config.erase("global_head_dim");
  config["per_layer_config"] = {{"01", {{"head_dim", 8}, {"num_key_value_heads", 1}}}};
  auto parsed = ParseGemma4Config(config);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->layers[1].head_dim, 8);
  EXPECT_EQ(parsed->layers[0].head_dim, 4);
}

TEST(Gemma4ConfigTest, RefusesUnsupportedAndMalformedConfigs) {
  EXPECT_EQ(ParseError(json{{"model_type", "llama"}}),
            "unsupported: config.json: model_type 'llama' is not supported; kiln supports Gemma 4 "
            "(gemma4, gemma4_unified, gemma4_text, gemma4_unified_text)");
  EXPECT_EQ(ParseError(json::array()), "malformed: config.json: top level is not a JSON object");
  json bad_layers = Minimal();
  bad_layers["layer_types"] = {"sliding_attention"};
  EXPECT_EQ(ParseError(bad_layers), "malformed: config.json: 'layer_types' must list one type per layer (2)");
  json bad_type = Minimal();
  bad_type["hidden_size"] = "big";
  EXPECT_EQ(ParseError(bad_type), "malformed: config.json: 'hidden_size' must be an integer");
  json rope = Minimal();
  rope["rope_parameters"] = {{"full_attention", {{"rope_type", "yarn"}}}};
  EXPECT_EQ(ParseError(rope), "unsupported: config.json: rope_parameters.full_attention.rope_type 'yarn' is not "
                              "supported (kiln supports default and proportional)");
  json activation = Minimal();
  activation["hidden_activation"] = "silu";
  EXPECT_EQ(ParseError(activation), "unsupported: config.json: hidden_activation 'silu' is not supported (expected gelu_pytorch_tanh)");
  json heads = Minimal();
  heads["num_attention_heads"] = 3;
  heads["num_key_value_heads"] = 2;
  EXPECT_EQ(ParseError(heads), "malformed: config.json: layer 0: num_attention_heads 3 is not a multiple of its 2 KV heads");
  json per_layer = Minimal();
  per_layer["per_layer_config"] = {{"7", {{"head_dim", 8}}}};
  EXPECT_EQ(ParseError(per_layer), "malformed: config.json: per_layer_config key '7' is not a layer index with an object");
  json bidirectional = Minimal();
  bidirectional["use_bidirectional_attention"] = "all";
  EXPECT_NE(ParseError(bidirectional).find("bidirectional encoder) is not supported"), std::string::npos);
  auto missing = LoadGemma4Config("/nonexistent/config.json");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace kiln
