#include "models/gemma4_config.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "io/json_file.h"

namespace kiln {

namespace {

using json = nlohmann::json;

Error Bad(const std::string& what) { return Error(ErrorCode::kMalformed, "config.json: " + what); }
Error Unsupported(const std::string& what) {
  return Error(ErrorCode::kUnsupported, "config.json: " + what);
}

// Reads an integer field; `fallback` when absent or null. Non-integers are malformed.
Result<int64_t> IntField(const json& object, const char* key, int64_t fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) return Bad(std::string("'") + key + "' must be an integer");
  return it->get<int64_t>();
}

// Reads a string field; `fallback` when absent or null. Anything else is malformed (a config is
// untrusted input: a number where a name belongs is an error, never an exception).
Result<std::string> StringField(const json& object, const char* key, const std::string& fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_string()) return Bad(std::string("'") + key + "' must be a string");
  return it->get<std::string>();
}

Result<double> FloatField(const json& object, const char* key, double fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number()) return Bad(std::string("'") + key + "' must be a number");
  return it->get<double>();
}

Result<bool> BoolField(const json& object, const char* key, bool fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return Bad(std::string("'") + key + "' must be true or false");
  return it->get<bool>();
}

Result<int64_t> PositiveField(const json& object, const char* key, int64_t fallback) {
  TRY_ASSIGN(int64_t value, IntField(object, key, fallback));
  if (value <= 0 || value > (int64_t{1} << 32)) {
    return Bad(std::string("'") + key + "' must be a positive integer, found " + std::to_string(value));
  }
  return value;
}

const std::set<std::string> kTextModelTypes = {"gemma4_text", "gemma4_unified_text"};
const std::set<std::string> kWrapperModelTypes = {"gemma4", "gemma4_unified"};

// Returns the text-decoder object of any supported form.
Result<const json*> FindTextConfig(const json& document, std::string* architecture) {
  if (!document.is_object()) return Bad("top level is not a JSON object");
  if (auto it = document.find("architectures"); it != document.end() && it->is_array() &&
                                                !it->empty() && (*it)[0].is_string()) {
    *architecture = (*it)[0].get<std::string>();
  }
  TRY_ASSIGN(const std::string model_type, StringField(document, "model_type", ""));
  if (kTextModelTypes.count(model_type)) return &document;
  if (auto it = document.find("text_config"); it != document.end()) {
    if (!model_type.empty() && !kWrapperModelTypes.count(model_type)) {
      return Unsupported("model_type '" + model_type + "' is not a Gemma 4 model; kiln supports " +
                         "gemma4, gemma4_unified, gemma4_text and gemma4_unified_text");
    }
    if (!it->is_object()) return Bad("'text_config' is not an object");
    TRY_ASSIGN(const std::string text_type, StringField(*it, "model_type", "gemma4_text"));
    if (!kTextModelTypes.count(text_type)) {
      return Unsupported("text_config.model_type '" + text_type + "' is not a Gemma 4 text decoder");
    }
    return &*it;
  }
  if (model_type.empty()) return Bad("no 'model_type' (is this a Hugging Face config.json?)");
  return Unsupported("model_type '" + model_type + "' is not supported; kiln supports Gemma 4 " +
                     "(gemma4, gemma4_unified, gemma4_text, gemma4_unified_text)");
}

struct RopeSetting {
  float theta = 10000.0f;
  double partial_rotary_factor = 1.0;
  bool proportional = false;
};

Result<RopeSetting> ParseRope(const json& text, const char* layer_type, RopeSetting fallback) {
  auto params = text.find("rope_parameters");
  if (params == text.end() || params->is_null()) return fallback;
  if (!params->is_object()) return Bad("'rope_parameters' is not an object");
  auto entry = params->find(layer_type);
  if (entry == params->end()) return fallback;
  if (!entry->is_object()) return Bad(std::string("rope_parameters.") + layer_type + " is not an object");
  RopeSetting rope = fallback;
  TRY_ASSIGN(const std::string type, StringField(*entry, "rope_type", "default"));
  if (type != "default" && type != "proportional") {
    return Unsupported(std::string("rope_parameters.") + layer_type + ".rope_type '" + type +
                       "' is not supported (kiln supports default and proportional)");
  }
  rope.proportional = type == "proportional";
  TRY_ASSIGN(double theta, FloatField(*entry, "rope_theta", rope.theta));
  rope.theta = static_cast<float>(theta);
  TRY_ASSIGN(rope.partial_rotary_factor, FloatField(*entry, "partial_rotary_factor", rope.proportional ? rope.partial_rotary_factor : 1.0));
  if (auto factor = entry->find("factor"); factor != entry->end() && factor->is_number() && factor->get<double>() != 1.0) {
    return Unsupported(std::string("rope_parameters.") + layer_type + ".factor != 1 (RoPE scaling) is not supported");
  }
  if (!rope.proportional && rope.partial_rotary_factor != 1.0) {
    return Unsupported("partial_rotary_factor with default RoPE is not supported");
  }
  if (rope.partial_rotary_factor <= 0.0 || rope.partial_rotary_factor > 1.0) {
    return Bad("partial_rotary_factor must be in (0, 1]");
  }
  return rope;
}

}  // namespace

Result<Gemma4Config> ParseGemma4Config(const json& document) {
  Gemma4Config config;
  TRY_ASSIGN(const json* text_ptr, FindTextConfig(document, &config.architecture));
  const json& text = *text_ptr;
  TRY_ASSIGN(config.model_type, StringField(text, "model_type", "gemma4_text"));

  TRY_ASSIGN(config.vocab_size, PositiveField(text, "vocab_size", 262144));
  TRY_ASSIGN(config.hidden_size, PositiveField(text, "hidden_size", 2304));
  TRY_ASSIGN(config.num_layers, PositiveField(text, "num_hidden_layers", 30));
  TRY_ASSIGN(config.num_heads, PositiveField(text, "num_attention_heads", 8));
  TRY_ASSIGN(int64_t num_kv_heads, PositiveField(text, "num_key_value_heads", 4));
  TRY_ASSIGN(int64_t head_dim, PositiveField(text, "head_dim", 256));
  const bool unified = config.model_type == "gemma4_unified_text";
  TRY_ASSIGN(config.sliding_window, PositiveField(text, "sliding_window", unified ? 1024 : 512));
  TRY_ASSIGN(config.max_position_embeddings, PositiveField(text, "max_position_embeddings", unified ? 262144 : 131072));
  TRY_ASSIGN(double eps, FloatField(text, "rms_norm_eps", 1e-6));
  config.rms_norm_eps = static_cast<float>(eps);
  TRY_ASSIGN(double softcap, FloatField(text, "final_logit_softcapping", 0.0));
  config.final_logit_softcap = static_cast<float>(softcap);
  // tie_word_embeddings may sit on the wrapper rather than the text config.
  TRY_ASSIGN(bool tie_outer, BoolField(document, "tie_word_embeddings", true));
  TRY_ASSIGN(config.tie_word_embeddings, BoolField(text, "tie_word_embeddings", tie_outer));
  TRY_ASSIGN(config.ple_dim, IntField(text, "hidden_size_per_layer_input", unified ? 0 : 256));
  TRY_ASSIGN(config.ple_vocab_size, IntField(text, "vocab_size_per_layer_input", config.vocab_size));
  TRY_ASSIGN(config.num_kv_shared_layers, IntField(text, "num_kv_shared_layers", 0));
  TRY_ASSIGN(bool moe, BoolField(text, "enable_moe_block", false));
  TRY_ASSIGN(bool k_eq_v, BoolField(text, "attention_k_eq_v", false));
  TRY_ASSIGN(bool double_wide, BoolField(text, "use_double_wide_mlp", false));
  TRY_ASSIGN(bool attention_bias, BoolField(text, "attention_bias", false));

  if (config.ple_dim < 0 || (config.ple_dim > 0 && config.ple_vocab_size <= 0)) return Bad("per-layer input sizes must be positive");
  if (config.num_kv_shared_layers < 0 || config.num_kv_shared_layers >= config.num_layers) {
    return Bad("num_kv_shared_layers must be in [0, num_hidden_layers)");
  }
  if (attention_bias) return Unsupported("attention_bias = true is not supported (no Gemma 4 model uses it)");
  TRY_ASSIGN(const std::string activation, StringField(text, "hidden_activation", "gelu_pytorch_tanh"));
  if (activation != "gelu_pytorch_tanh") {
    return Unsupported("hidden_activation '" + activation + "' is not supported (expected gelu_pytorch_tanh)");
  }
  if (auto it = text.find("use_bidirectional_attention"); it != text.end() && it->is_string() && it->get<std::string>() == "all") {
    return Unsupported("use_bidirectional_attention = \"all\" (a bidirectional encoder) is not supported");
  }
  if (auto it = text.find("query_pre_attn_scalar"); it != text.end() && !it->is_null()) {
    return Unsupported("query_pre_attn_scalar is not supported (Gemma 4 uses an attention scale of 1)");
  }
  if (moe) {
    TRY_ASSIGN(config.num_experts, PositiveField(text, "num_experts", 0));
    TRY_ASSIGN(config.top_k_experts, PositiveField(text, "top_k_experts", 0));
    TRY_ASSIGN(config.moe_intermediate_size, PositiveField(text, "moe_intermediate_size", 0));
    if (config.top_k_experts > config.num_experts) return Bad("top_k_experts exceeds num_experts");
  }
  TRY_ASSIGN(const std::string torch_dtype, StringField(text, "torch_dtype", "bfloat16"));
  TRY_ASSIGN(const std::string outer_dtype, StringField(document, "dtype", torch_dtype));
  TRY_ASSIGN(const std::string dtype, StringField(text, "dtype", outer_dtype));
  config.weight_dtype = dtype == "float32" ? DType::kF32 : dtype == "float16" ? DType::kF16 : DType::kBF16;

  for (const json* source : {&document, &text}) {
    if (auto it = source->find("eos_token_id"); it != source->end()) {
      config.eos_token_ids.clear();
      if (it->is_number_integer()) config.eos_token_ids.push_back(it->get<int64_t>());
      if (it->is_array()) for (const json& id : *it) if (id.is_number_integer()) config.eos_token_ids.push_back(id.get<int64_t>());
    }
  }

  // Layer types: explicit, or every 6th (sliding_window_pattern) full with the last forced full.
  std::vector<AttentionType> types;
  if (auto it = text.find("layer_types"); it != text.end() && !it->is_null()) {
    if (!it->is_array() || static_cast<int64_t>(it->size()) != config.num_layers) {
      return Bad("'layer_types' must list one type per layer (" + std::to_string(config.num_layers) + ")");
    }
    for (const json& type : *it) {
      const std::string name = type.is_string() ? type.get<std::string>() : "";
      if (name == "sliding_attention") types.push_back(AttentionType::kSliding);
      else if (name == "full_attention") types.push_back(AttentionType::kFull);
      else return Unsupported("layer type '" + name + "' is not supported (expected sliding_attention or full_attention)");
    }
  } else {
    TRY_ASSIGN(int64_t pattern, PositiveField(text, "sliding_window_pattern", 6));
    for (int64_t i = 0; i < config.num_layers; ++i) {
      types.push_back((i + 1) % pattern == 0 ? AttentionType::kFull : AttentionType::kSliding);
    }
    types.back() = AttentionType::kFull;
  }

  // Full-layer geometry: per_layer_config (transformers 5.17) or the Hub keys.
  std::map<int64_t, json> overrides;
  if (auto it = text.find("per_layer_config"); it != text.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("'per_layer_config' is not an object");
    for (auto& [key, entry] : it->items()) {
      char* end = nullptr;
      const long long index = std::strtoll(key.c_str(), &end, 10);
      if (key.empty() || *end != '\0' || index < 0 || index >= config.num_layers || !entry.is_object()) {
        return Bad("per_layer_config key '" + key + "' is not a layer index with an object");
      }
      for (auto& [field, unused] : entry.items()) {
        (void)unused;
        if (field != "head_dim" && field != "num_key_value_heads" && field != "intermediate_size") {
          return Unsupported("per_layer_config field '" + field + "' is not supported");
        }
      }
      overrides[index] = entry;
    }
  } else {
    TRY_ASSIGN(int64_t global_head_dim, PositiveField(text, "global_head_dim", 512));
    TRY_ASSIGN(int64_t global_kv_heads, IntField(text, "num_global_key_value_heads", 0));
    for (int64_t i = 0; i < config.num_layers; ++i) {
      if (types[static_cast<size_t>(i)] != AttentionType::kFull) continue;
      json entry = {{"head_dim", global_head_dim}};
      if (k_eq_v && global_kv_heads > 0) entry["num_key_value_heads"] = global_kv_heads;
      overrides[i] = entry;
    }
  }

  TRY_ASSIGN(RopeSetting sliding_rope, ParseRope(text, "sliding_attention", RopeSetting{10000.0f, 1.0, false}));
  TRY_ASSIGN(RopeSetting full_rope, ParseRope(text, "full_attention", RopeSetting{1000000.0f, 0.25, true}));

  std::vector<int64_t> widths(static_cast<size_t>(config.num_layers));
  if (auto it = text.find("intermediate_size"); it != text.end() && it->is_array()) {
    if (static_cast<int64_t>(it->size()) != config.num_layers) return Bad("'intermediate_size' list length differs from num_hidden_layers");
    for (size_t i = 0; i < widths.size(); ++i) {
      if (!(*it)[i].is_number_integer() || (*it)[i].get<int64_t>() <= 0) return Bad("'intermediate_size' entries must be positive integers");
      widths[i] = (*it)[i].get<int64_t>();
    }
  } else {
    TRY_ASSIGN(int64_t width, PositiveField(text, "intermediate_size", 9216));
    std::fill(widths.begin(), widths.end(), width);
  }

  const int64_t first_shared = config.first_kv_shared_layer();
  for (int64_t i = 0; i < config.num_layers; ++i) {
    Gemma4LayerConfig layer;
    layer.self_index = i;
    layer.attention = types[static_cast<size_t>(i)];
    const bool full = layer.attention == AttentionType::kFull;
    layer.head_dim = head_dim;
    layer.num_kv_heads = num_kv_heads;
    layer.intermediate_size = widths[static_cast<size_t>(i)];
    if (auto it = overrides.find(i); it != overrides.end()) {
      TRY_ASSIGN(layer.head_dim, PositiveField(it->second, "head_dim", layer.head_dim));
      TRY_ASSIGN(layer.num_kv_heads, PositiveField(it->second, "num_key_value_heads", layer.num_kv_heads));
      TRY_ASSIGN(layer.intermediate_size, PositiveField(it->second, "intermediate_size", layer.intermediate_size));
    }
    if (layer.head_dim % 2 != 0) return Bad("head_dim of layer " + std::to_string(i) + " is odd");
    if (config.num_heads % layer.num_kv_heads != 0) {
      return Bad("layer " + std::to_string(i) + ": num_attention_heads " + std::to_string(config.num_heads) +
                 " is not a multiple of its " + std::to_string(layer.num_kv_heads) + " KV heads");
    }
    layer.k_eq_v = full && k_eq_v;
    layer.window = full ? 0 : config.sliding_window;
    const RopeSetting& rope = full ? full_rope : sliding_rope;
    layer.rope_theta = rope.theta;
    // HF: int(partial_rotary_factor * head_dim // 2) frequencies; the exponent divides by head_dim.
    layer.rotary_dims = static_cast<int64_t>(std::floor(rope.partial_rotary_factor * static_cast<double>(layer.head_dim) / 2.0));
    layer.moe = moe;
    layer.kv_source_layer = i;
    if (config.num_kv_shared_layers > 0 && i >= first_shared) {
      int64_t donor = -1;
      for (int64_t j = first_shared - 1; j >= 0; --j) {
        if (types[static_cast<size_t>(j)] == layer.attention) { donor = j; break; }
      }
      if (donor < 0) return Bad("KV-shared layer " + std::to_string(i) + " has no earlier layer of its type to share with");
      layer.kv_source_layer = donor;
      if (double_wide) layer.intermediate_size *= 2;
    }
    config.layers.push_back(layer);
  }
  // A shared layer reads its donor's cache, so their geometry must agree.
  for (const Gemma4LayerConfig& layer : config.layers) {
    const Gemma4LayerConfig& donor = config.layers[static_cast<size_t>(layer.kv_source_layer)];
    if (donor.head_dim != layer.head_dim || donor.num_kv_heads != layer.num_kv_heads) {
      return Bad("KV-shared layer " + std::to_string(layer.self_index) + " differs in head geometry from its donor");
    }
  }
  return config;
}

Result<Gemma4Config> LoadGemma4Config(const std::string& path) {
  TRY_ASSIGN(json document, ReadJsonFile(path));
  auto config = ParseGemma4Config(document);
  if (!config) return config.error().WithContext(path);
  return config;
}

Result<Gemma4Config> TruncateLayers(const Gemma4Config& config, int64_t num_layers) {
  if (num_layers < 1 || num_layers > config.num_layers) {
    return Error(ErrorCode::kInvalidArgument, "--num-layers " + std::to_string(num_layers) +
                 " is outside [1, " + std::to_string(config.num_layers) + "]");
  }
  Gemma4Config truncated = config;
  truncated.layers.resize(static_cast<size_t>(num_layers));
  truncated.num_layers = num_layers;
  truncated.num_kv_shared_layers = 0;
  for (const Gemma4LayerConfig& layer : truncated.layers) {
    if (layer.kv_shared()) ++truncated.num_kv_shared_layers;
  }
  return truncated;
}

std::string Gemma4Config::Summary() const {
  int64_t sliding = 0, full = 0, shared = 0;
  for (const Gemma4LayerConfig& layer : layers) {
    (layer.attention == AttentionType::kFull ? full : sliding)++;
    if (layer.kv_shared()) ++shared;
  }
  std::string text = model_type + ": " + std::to_string(num_layers) + " layers (" + std::to_string(sliding) +
                     " sliding, " + std::to_string(full) + " full, " + std::to_string(shared) +
                     " KV-shared), hidden " + std::to_string(hidden_size) + ", vocab " + std::to_string(vocab_size) +
                     ", " + std::to_string(num_heads) + " query heads";
  if (ple_dim > 0) text += ", per-layer embeddings " + std::to_string(ple_dim);
  if (num_experts > 0) text += ", MoE " + std::to_string(num_experts) + " experts top-" + std::to_string(top_k_experts);
  return text;
}

}  // namespace kiln
