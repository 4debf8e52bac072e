#include "models/gemma4_family.h"

#include <cstdio>

#include "models/gemma4_assistant.h"
#include "models/gemma4_builder.h"
#include "models/gemma4_gguf.h"

namespace kiln {

ModelFamily Gemma4Family() {
  ModelFamily family;
  family.name = "gemma4";
  family.description = "Gemma 4 (gemma4, gemma4_unified, gemma4_text, gemma4_unified_text)";
  family.recognizes = [](const nlohmann::json& document) {
    const auto found = document.find("model_type");
    const std::string type = found != document.end() && found->is_string() ? found->get<std::string>() : "";
    // Every Gemma 4 form (gemma4_config.h); a bare text_config wrapper is Gemma's to judge.
    return type.rfind("gemma4", 0) == 0 || (type.empty() && document.contains("text_config"));
  };
  family.parse = [](const nlohmann::json& document) -> Result<std::unique_ptr<ModelArchitecture>> {
    TRY_ASSIGN(Gemma4Config config, ParseGemma4Config(document));
    return std::unique_ptr<ModelArchitecture>(new Gemma4Architecture(std::move(config)));
  };
  family.gguf_architecture = "gemma4";
  family.import_gguf = ImportGemma4Gguf;
  family.gguf_assistant_architecture = "gemma4-assistant";
  family.import_gguf_assistant = ImportGemma4AssistantGguf;
  return family;
}

Result<std::unique_ptr<ModelArchitecture>> Gemma4Architecture::KeepLayers(int64_t num_layers) const {
  TRY_ASSIGN(Gemma4Config truncated, TruncateLayers(config_, num_layers));
  return std::unique_ptr<ModelArchitecture>(new Gemma4Architecture(std::move(truncated)));
}

Result<Graph> Gemma4Architecture::BuildGraph() const { return BuildGemma4Graph(config_); }

Result<ModelArchitecture::DraftGraphs> Gemma4Architecture::BuildWithAssistant(const nlohmann::json& assistant_config) const {
  TRY_ASSIGN(const Gemma4AssistantConfig assistant, ParseGemma4AssistantConfig(assistant_config));
  DraftGraphs graphs;
  TRY_ASSIGN(graphs.target, BuildGemma4Graph(config_, /*hidden_output=*/true));
  TRY_ASSIGN(graphs.draft, BuildGemma4DraftGraph(config_, graphs.target, assistant));
  graphs.summary = assistant.model_type + ": " + std::to_string(assistant.text.num_layers) + " layers, hidden " +
                   std::to_string(assistant.text.hidden_size) + ", " + std::to_string(assistant.text.num_heads) + " heads" +
                   (assistant.ordered_embeddings ? ", centroid-masked head (top " + std::to_string(assistant.centroid_top_k) + " of " +
                                                       std::to_string(assistant.num_centroids) + " centroids)"
                                                 : "");
  return graphs;
}

// Checkpoints name the decoder's tensors with one of these prefixes (docs/gemma4.md §9).
std::vector<std::string> Gemma4Architecture::TensorPrefixes() const { return {"model.language_model.", "model.", ""}; }

std::vector<std::string> Gemma4Architecture::LayerTable() const {
  std::vector<std::string> lines = {"idx type     head_dim kv_heads k_eq_v kv_from ffn"};
  for (const Gemma4LayerConfig& layer : config_.layers) {
    char line[160];
    std::snprintf(line, sizeof(line), "%3lld %-8s %8lld %8lld %6s %7lld %lld%s", static_cast<long long>(layer.self_index),
                  layer.attention == AttentionType::kFull ? "full" : "sliding", static_cast<long long>(layer.head_dim),
                  static_cast<long long>(layer.num_kv_heads), layer.k_eq_v ? "yes" : "no",
                  static_cast<long long>(layer.kv_source_layer), static_cast<long long>(layer.intermediate_size),
                  layer.moe ? " +moe" : "");
    lines.push_back(line);
  }
  return lines;
}

const Gemma4Config* AsGemma4(const ModelArchitecture& architecture) {
  const auto* gemma = dynamic_cast<const Gemma4Architecture*>(&architecture);
  return gemma ? &gemma->config() : nullptr;
}

}  // namespace kiln
