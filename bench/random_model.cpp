#include "random_model.h"

#include <fstream>
#include <random>

#include "engine/model_loader.h"
#include "io/safetensors_writer.h"

namespace kiln {

namespace fs = std::filesystem;

// Writes config.json and random bf16 weights for `config` into `dir`.
Status WriteRandomModel(const fs::path& dir, const nlohmann::json& config) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  LoadOptions options;
  options.max_tokens = 1;
  options.max_context = 16;
  TRY_ASSIGN(auto planned, LoadedModel::Load((dir / "config.json").string(), options));
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<std::vector<uint8_t>> storage;
  std::vector<TensorToWrite> tensors;
  for (const WeightBinding& weight : planned->program().weights) {
    const bool is_norm = weight.name.find("norm") != std::string::npos || weight.name.find("scal") != std::string::npos;
    std::vector<uint8_t> bytes(static_cast<size_t>(weight.size_bytes()));
    uint16_t* values = reinterpret_cast<uint16_t*>(bytes.data());
    for (size_t i = 0; i < bytes.size() / 2; ++i) values[i] = F32ToBf16(is_norm ? 1.0f + normal(rng) : normal(rng));
    storage.push_back(std::move(bytes));
    tensors.push_back({"model." + weight.name, "BF16", weight.shape, storage.back()});
  }
  return WriteSafetensors((dir / "model.safetensors").string(), tensors);
}

nlohmann::json GemmaConfig(int64_t vocab, int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                           int64_t head_dim, int64_t global_head_dim, int64_t intermediate, int64_t window) {
  std::vector<std::string> types;
  for (int64_t i = 0; i < layers; ++i) types.push_back((i + 1) % 5 == 0 || i + 1 == layers ? "full_attention" : "sliding_attention");
  return {{"model_type", "gemma4_text"}, {"vocab_size", vocab}, {"hidden_size", hidden}, {"num_hidden_layers", layers},
          {"num_attention_heads", heads}, {"num_key_value_heads", kv_heads}, {"head_dim", head_dim},
          {"global_head_dim", global_head_dim}, {"num_global_key_value_heads", 1}, {"attention_k_eq_v", true},
          {"intermediate_size", intermediate}, {"sliding_window", window}, {"final_logit_softcapping", 30.0},
          {"hidden_size_per_layer_input", 0}, {"layer_types", types}, {"dtype", "bfloat16"}};
}


}  // namespace kiln
