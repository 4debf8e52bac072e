// The Gemma 4 MTP assistant's config and draft graph (models/gemma4_assistant.h): the 12B's
// shapes against its target, which target caches the layers read, and every refusal by name.
#include "models/gemma4_assistant.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "models/gemma4_builder.h"

namespace kiln {
namespace {

using json = nlohmann::json;

json ReadData(const std::string& name) {
  auto document = ReadJsonFile(std::string(KILN_TEST_DATA_DIR) + "/" + name);
  EXPECT_TRUE(document.has_value());
  return document.has_value() ? *document : json();
}

Gemma4Config Target12B() { return ParseGemma4Config(ReadData("gemma-4-12b-config.json")).value(); }

// The draft graph of `assistant` for the 12B target, or the error.
Result<Graph> DraftGraph(const json& assistant) {
  TRY_ASSIGN(const Gemma4AssistantConfig parsed, ParseGemma4AssistantConfig(assistant));
  const Gemma4Config target = Target12B();
  TRY_ASSIGN(const Graph graph, BuildGemma4Graph(target, /*hidden_output=*/true));
  return BuildGemma4DraftGraph(target, graph, parsed);
}

TEST(Gemma4Assistant, TwelveBShapesReadTheLastSlidingAndFullTargetLayers) {
  const json document = ReadData("gemma-4-12b-assistant-config.json");
  ASSERT_TRUE(IsGemma4AssistantConfig(document));
  auto config = ParseGemma4AssistantConfig(document);
  ASSERT_TRUE(config.has_value()) << config.error().ToString();
  EXPECT_EQ(config->model_type, "gemma4_unified_assistant");
  EXPECT_EQ(config->backbone_hidden_size, 3840);
  EXPECT_EQ(config->text.hidden_size, 1024);
  ASSERT_EQ(config->text.layers.size(), 4u);
  EXPECT_EQ(config->text.layers[0].head_dim, 256);
  EXPECT_EQ(config->text.layers[3].head_dim, 512);
  EXPECT_EQ(config->text.layers[3].attention, AttentionType::kFull);

  auto graph = DraftGraph(document);
  ASSERT_TRUE(graph.has_value()) << graph.error().ToString();
  EXPECT_EQ(graph->InputIds().size(), static_cast<size_t>(StepInput::kCount));
  const std::vector<int32_t> outputs = graph->OutputIds();
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(graph->value(outputs[0]).shape.dims[1].value, 3840);    // the next hidden state
  EXPECT_EQ(graph->value(outputs[1]).shape.dims[1].value, 262144);  // the logits
  std::vector<std::string> read;
  for (const Op& op : graph->ops()) {
    if (op.kind == OpKind::kKvAppend) ADD_FAILURE() << "the drafter writes a cache: " << op.name;
    if (op.kind == OpKind::kAttention) read.push_back(graph->caches()[static_cast<size_t>(op.attrs.cache_index)].name);
  }
  // docs/speculative.md §2.2: the 12B's drafter reads target layers 46 (sliding) and 47 (full).
  EXPECT_EQ(read, (std::vector<std::string>{"layers.46", "layers.46", "layers.46", "layers.47"}));
}

TEST(Gemma4Assistant, RefusesWhatItCannotRunOrWhatDoesNotFit) {
  const json base = ReadData("gemma-4-12b-assistant-config.json");
  auto error = [](const json& document) {
    auto graph = DraftGraph(document);
    EXPECT_FALSE(graph.has_value());
    return graph.has_value() ? std::string() : graph.error().ToString();
  };
  json other = base;
  other["model_type"] = "gemma4_text";
  EXPECT_FALSE(IsGemma4AssistantConfig(other));
  EXPECT_NE(error(other).find("model_type 'gemma4_text' is not a Gemma 4 assistant"), std::string::npos);

  json wider = base;
  wider["backbone_hidden_size"] = 5376;
  EXPECT_NE(error(wider).find("the MTP assistant does not fit its target: its backbone_hidden_size is 5376, the target's hidden size 3840"),
            std::string::npos);
  json vocabulary = base;
  vocabulary["text_config"]["vocab_size"] = 256000;
  EXPECT_NE(error(vocabulary).find("its vocabulary has 256000 tokens, the target's 262144"), std::string::npos);
  json heads = base;
  heads["text_config"]["head_dim"] = 128;
  EXPECT_NE(error(heads).find("its sliding layer 0 has head_dim 128, the target's sliding cache 'layers.46' 256"), std::string::npos);
  json window = base;
  window["text_config"]["sliding_window"] = 2048;
  EXPECT_NE(error(window).find("its sliding window 2048 exceeds the target's 1024"), std::string::npos);
  json grouping = base;
  grouping["text_config"]["num_attention_heads"] = 12;  // its own 4 KV heads, but the target's cache has 8
  grouping["text_config"]["num_key_value_heads"] = 4;
  EXPECT_NE(error(grouping).find("12 query heads do not group over the 8 KV heads of the target's cache 'layers.46'"), std::string::npos);
  json per_layer = base;
  per_layer["text_config"]["hidden_size_per_layer_input"] = 256;
  per_layer["text_config"]["vocab_size_per_layer_input"] = 262144;
  EXPECT_NE(error(per_layer).find("hidden_size_per_layer_input must be 0 in an assistant"), std::string::npos);
  json moe = base;
  moe["text_config"]["enable_moe_block"] = true;
  moe["text_config"]["num_experts"] = 8;
  moe["text_config"]["top_k_experts"] = 2;
  moe["text_config"]["moe_intermediate_size"] = 256;
  EXPECT_NE(error(moe).find("an assistant with MoE layers is not supported"), std::string::npos);
  json no_text = base;
  no_text.erase("text_config");
  EXPECT_NE(error(no_text).find("'text_config' is missing or not an object"), std::string::npos);
  json bad_flag = base;
  bad_flag["use_ordered_embeddings"] = "yes";
  EXPECT_NE(error(bad_flag).find("'use_ordered_embeddings' must be true or false"), std::string::npos);
}

}  // namespace
}  // namespace kiln
