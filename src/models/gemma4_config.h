// Gemma 4 text-decoder configuration, parsed from every config.json form a Gemma 4 checkpoint
// uses (docs/gemma4.md §2):
//   - model_type "gemma4_text" (Gemma4ForCausalLM) or "gemma4_unified_text" (12B);
//   - nested under "text_config" of Gemma4ForConditionalGeneration /
//     Gemma4UnifiedForConditionalGeneration (model_type "gemma4" / "gemma4_unified");
//   - full-layer geometry as Hub keys (global_head_dim, num_global_key_value_heads) or as the
//     per_layer_config map written by transformers 5.17.
// Everything that varies per layer is resolved here into Gemma4LayerConfig, so the graph builder
// reads a table instead of re-deriving rules. A field kiln does not support is refused with an
// error naming it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/dtype.h"
#include "core/status.h"

namespace kiln {

enum class AttentionType : uint8_t { kSliding = 0, kFull = 1 };

struct Gemma4LayerConfig {
  AttentionType attention = AttentionType::kSliding;
  int64_t head_dim = 0;
  int64_t num_kv_heads = 0;
  bool k_eq_v = false;            // no v_proj: V = rms(raw k projection)
  int64_t kv_source_layer = 0;    // itself, or the donor layer for KV-shared layers
  int64_t intermediate_size = 0;  // dense MLP width (double-wide already applied)
  int64_t window = 0;             // sliding window in tokens; 0 for full layers
  float rope_theta = 10000.0f;
  int64_t rotary_dims = 0;        // rotated frequencies; the rest have inv_freq 0
  bool moe = false;
  bool kv_shared() const { return kv_source_layer >= 0 && kv_source_layer != self_index; }
  int64_t self_index = 0;
};

struct Gemma4Config {
  std::string model_type;          // of the text decoder
  std::string architecture;        // first of "architectures", if given
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t sliding_window = 0;
  int64_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float final_logit_softcap = 0.0f;  // 0 = none
  bool tie_word_embeddings = true;
  int64_t ple_dim = 0;               // hidden_size_per_layer_input; 0 = no per-layer embeddings
  int64_t ple_vocab_size = 0;
  int64_t num_kv_shared_layers = 0;
  int64_t num_experts = 0;
  int64_t top_k_experts = 0;
  int64_t moe_intermediate_size = 0;
  DType weight_dtype = DType::kBF16;  // from "dtype"/"torch_dtype"; used when planning without weights
  std::vector<int64_t> eos_token_ids;
  std::vector<Gemma4LayerConfig> layers;

  int64_t first_kv_shared_layer() const { return num_layers - num_kv_shared_layers; }
  // One line per layer group, for `kiln inspect`.
  std::string Summary() const;
};

// Parses a config.json document (any of the forms above).
Result<Gemma4Config> ParseGemma4Config(const nlohmann::json& document);
// Reads and parses `path` (a config.json file).
Result<Gemma4Config> LoadGemma4Config(const std::string& path);
// Keeps the first `num_layers` layers (bisection, as `--num-layers`). KV-shared layers whose
// donor is cut away, or N outside [1, layers], are kInvalidArgument.
Result<Gemma4Config> TruncateLayers(const Gemma4Config& config, int64_t num_layers);

}  // namespace kiln
