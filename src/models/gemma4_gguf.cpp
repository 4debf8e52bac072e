#include "models/gemma4_gguf.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace kiln {

namespace {

using json = nlohmann::json;

// llama.cpp's tensor names (gguf-py MODEL_ARCH.GEMMA4) and the HF names kiln's graph uses.
const std::map<std::string, std::string, std::less<>> kGlobalNames = {
    {"token_embd.weight", "embed_tokens.weight"},
    {"output_norm.weight", "norm.weight"},
    {"output.weight", "lm_head.weight"},
    {"per_layer_token_embd.weight", "embed_tokens_per_layer.weight"},
    {"per_layer_model_proj.weight", "per_layer_model_projection.weight"},
    {"per_layer_proj_norm.weight", "per_layer_projection_norm.weight"},
};
const std::map<std::string, std::string, std::less<>> kLayerNames = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"post_attention_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_norm.weight", "pre_feedforward_layernorm.weight"},
    {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"layer_output_scale.weight", "layer_scalar"},
    {"ffn_gate_inp.weight", "router.proj.weight"},
    {"ffn_gate_inp.scale", "router.scale"},
    {"ffn_down_exps.scale", "router.per_expert_scale"},
    {"ffn_gate_up_exps.weight", "experts.gate_up_proj"},
    {"ffn_down_exps.weight", "experts.down_proj"},
    {"pre_ffw_norm_2.weight", "pre_feedforward_layernorm_2.weight"},
    {"post_ffw_norm_1.weight", "post_feedforward_layernorm_1.weight"},
    {"post_ffw_norm_2.weight", "post_feedforward_layernorm_2.weight"},
    {"inp_gate.weight", "per_layer_input_gate.weight"},
    {"proj.weight", "per_layer_projection.weight"},
    {"post_norm.weight", "post_per_layer_input_norm.weight"},
};
// The MTP drafter's (gguf-py MODEL_ARCH.GEMMA4_ASSISTANT), under its checkpoint's names; its
// layers use kLayerNames under "model.layers.N.".
const std::map<std::string, std::string, std::less<>> kAssistantGlobalNames = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"nextn.pre_projection.weight", "pre_projection.weight"},
    {"nextn.post_projection.weight", "post_projection.weight"},
    {"masked_embd_centroids.weight", "masked_embedding.centroids.weight"},
    {"masked_embd_ordering", "masked_embedding.token_ordering"},
};
// Not a graph weight of the drafter: output.weight repeats its tied head (token_embd).
const std::set<std::string, std::less<>> kAssistantIgnored = {"output.weight"};
// The E2B/E4B drafters' centroid head: kept by transformers' centroid_intermediate_top_k, 32 in
// both released configs; llama.cpp's converter drops the tensors, so no key of its names it.
constexpr int64_t kDefaultCentroidTopK = 32;
// A drafter layer's tensors (Q-only attention, a dense MLP): any other kLayerNames entry (attn_k,
// experts, per-layer inputs) would be silently unused, so it is refused.
const std::set<std::string, std::less<>> kAssistantLayerTensors = {
    "attn_norm.weight", "attn_q.weight",  "attn_q_norm.weight", "attn_output.weight", "post_attention_norm.weight", "ffn_norm.weight",
    "post_ffw_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "layer_output_scale.weight"};
constexpr std::string_view kRopeFreqs = "rope_freqs.weight";
// Real models cap at about 60 layers; the bound only keeps a hostile count from sizing vectors.
constexpr uint32_t kMaxLayers = 4096;

// Reads the keys of one architecture ("gemma4.", "gemma4-assistant.") with errors that name the
// file and key.
class MetadataReader {
 public:
  MetadataReader(const GgufModel& model, std::string prefix)
      : meta_(model.metadata()), file_(model.shards().front().name()), prefix_(std::move(prefix)) {}

  std::string Key(std::string_view suffix) const { return prefix_ + std::string(suffix); }

  Result<int64_t> Required(std::string_view suffix) const {
    TRY_ASSIGN(uint32_t value, meta_.GetU32(Key(suffix)));
    return static_cast<int64_t>(value);
  }
  Result<int64_t> Optional(std::string_view suffix, int64_t fallback) const {
    if (!meta_.Has(Key(suffix))) return fallback;
    return Required(suffix);
  }
  Result<double> OptionalFloat(std::string_view suffix, double fallback) const {
    if (!meta_.Has(Key(suffix))) return fallback;
    TRY_ASSIGN(float value, meta_.GetF32(Key(suffix)));
    return static_cast<double>(value);
  }
  // A u32 for every layer, or an array of one integer per layer.
  Result<std::vector<int64_t>> PerLayer(std::string_view suffix, int64_t num_layers) const {
    const std::string key = Key(suffix);
    const GgufValue* value = meta_.Find(key);
    if (value != nullptr && value->type() == GgufValueType::kArray) {
      TRY_ASSIGN(std::vector<int64_t> values, meta_.GetIntArray(key));
      if (static_cast<int64_t>(values.size()) != num_layers) {
        return Bad("metadata key '" + key + "' has " + std::to_string(values.size()) + " entries; block_count is " +
                   std::to_string(num_layers));
      }
      return values;
    }
    TRY_ASSIGN(int64_t scalar, Required(suffix));
    return std::vector<int64_t>(static_cast<size_t>(num_layers), scalar);
  }
  // true = sliding, from a bool per layer or llama.cpp's period n (layer i slides unless
  // i % n == n - 1).
  Result<std::vector<bool>> SlidingLayers(int64_t num_layers) const {
    const std::string key = Key("attention.sliding_window_pattern");
    const GgufValue* value = meta_.Find(key);
    if (value != nullptr && value->type() == GgufValueType::kArray) {
      TRY_ASSIGN(std::vector<bool> sliding, meta_.GetBoolArray(key));
      if (static_cast<int64_t>(sliding.size()) != num_layers) {
        return Bad("metadata key '" + key + "' has " + std::to_string(sliding.size()) + " entries; block_count is " +
                   std::to_string(num_layers));
      }
      return sliding;
    }
    TRY_ASSIGN(int64_t period, Required("attention.sliding_window_pattern"));
    if (period < 1) return Bad("metadata key '" + key + "' must be at least 1");
    std::vector<bool> sliding;
    for (int64_t i = 0; i < num_layers; ++i) sliding.push_back(i % period < period - 1);
    return sliding;
  }

  Error Bad(const std::string& what) const { return Error(ErrorCode::kMalformed, file_ + ": " + what); }
  Error Unsupported(const std::string& what) const { return Error(ErrorCode::kUnsupported, file_ + ": " + what); }
  const GgufMetadata& meta() const { return meta_; }

 private:
  const GgufMetadata& meta_;
  std::string file_;
  std::string prefix_;
};

std::vector<int64_t> Reversed(const std::vector<int64_t>& shape) { return {shape.rbegin(), shape.rend()}; }

// The partial rotary factor of the full layers. The converter writes n_rot = head_dim and a
// rope_freqs tensor whose first entries are 1 (rotated) and the rest 1e30 (a frequency divided
// by 1e30 is no rotation): the rotated count over head_dim / 2 is HF's partial_rotary_factor.
Result<double> FullRotaryFactor(const GgufModel& model, const MetadataReader& reader, int64_t head_dim) {
  TRY_ASSIGN(int64_t rope_dims, reader.Optional("rope.dimension_count", head_dim));
  const GgufTensor* freqs = model.FindTensor(kRopeFreqs);
  if (freqs == nullptr) {
    // No factors: llama.cpp rotates the first rope.dimension_count dims of each head.
    if (rope_dims < 2 || rope_dims > head_dim || rope_dims % 2 != 0) {
      return reader.Bad(reader.Key("rope.dimension_count") + " " + std::to_string(rope_dims) + " is not an even count up to key_length " +
                        std::to_string(head_dim));
    }
    return static_cast<double>(rope_dims) / static_cast<double>(head_dim);
  }
  if (rope_dims != head_dim) {
    return reader.Unsupported(reader.Key("rope.dimension_count") + " " + std::to_string(rope_dims) + " differs from key_length " +
                              std::to_string(head_dim) + " while rope_freqs.weight is present");
  }
  if (freqs->type != GgmlType::kF32 || freqs->shape.size() != 1 || freqs->shape[0] != head_dim / 2) {
    return reader.Bad("rope_freqs.weight must be f32 of shape [" + std::to_string(head_dim / 2) + "], found " +
                      GgmlTypeName(static_cast<uint32_t>(freqs->type)) + " " + freqs->ShapeString());
  }
  int64_t rotated = 0;
  for (int64_t i = 0; i < freqs->shape[0]; ++i) {
    float factor;
    std::memcpy(&factor, freqs->data + i * 4, sizeof(factor));
    const bool one = factor == 1.0f, never = factor >= 1e29f;
    if (one && rotated == i) ++rotated;
    else if (!never) {
      return reader.Unsupported("rope_freqs.weight[" + std::to_string(i) + "] = " + std::to_string(factor) +
                                ": kiln supports the converter's proportional RoPE (factors 1 then 1e30), not RoPE frequency factors");
    }
  }
  if (rotated == 0) return reader.Bad("rope_freqs.weight rotates no frequency");
  return 2.0 * static_cast<double>(rotated) / static_cast<double>(head_dim);
}

// Maps every tensor to its HF name; refuses names kiln would silently ignore.
Result<std::vector<ImportedModel::Tensor>> MapTensors(const GgufModel& model, const MetadataReader& reader, int64_t num_layers,
                                                      bool assistant) {
  const auto& globals = assistant ? kAssistantGlobalNames : kGlobalNames;
  const std::string layer_prefix = assistant ? "model.layers." : "layers.";
  const std::string what = assistant ? "the Gemma 4 MTP drafter" : "the Gemma 4 text decoder";
  std::vector<ImportedModel::Tensor> tensors;
  for (const GgufTensor& tensor : model.tensors()) {
    std::string name;
    if (tensor.name == kRopeFreqs) continue;  // read by FullRotaryFactor, not a graph weight
    if (assistant && kAssistantIgnored.count(tensor.name)) continue;
    if (auto global = globals.find(tensor.name); global != globals.end()) {
      name = global->second;
    } else if (tensor.name.starts_with("blk.")) {
      const size_t dot = tensor.name.find('.', 4);
      const std::string index = tensor.name.substr(4, dot == std::string::npos ? std::string::npos : dot - 4);
      const std::string suffix = dot == std::string::npos ? "" : tensor.name.substr(dot + 1);
      const bool digits = !index.empty() && index.size() <= 6 && index.find_first_not_of("0123456789") == std::string::npos;
      if (!digits || std::stoll(index) >= num_layers) {
        return reader.Bad("tensor '" + tensor.name + "' names a layer outside the " + std::to_string(num_layers) + " of block_count");
      }
      if (suffix == "ffn_gate_exps.weight" || suffix == "ffn_up_exps.weight") {
        return reader.Unsupported("tensor '" + tensor.name + "': split expert tensors are not supported; kiln reads the fused "
                                  "blk.N.ffn_gate_up_exps.weight that llama.cpp's converter writes");
      }
      auto layer = kLayerNames.find(suffix);
      if (layer == kLayerNames.end() || (assistant && !kAssistantLayerTensors.count(suffix))) {
        return reader.Unsupported("tensor '" + tensor.name + "' is not part of " + what + " kiln implements");
      }
      name = layer_prefix + std::to_string(std::stoll(index)) + "." + layer->second;
    } else {
      return reader.Unsupported("tensor '" + tensor.name + "' is not part of " + what + " kiln implements");
    }
    tensors.push_back({name, &tensor, Reversed(tensor.shape)});
  }
  return tensors;
}

// The inverse of the name tables: "layers.3.self_attn.v_proj.weight" -> "blk.3.attn_v.weight".
std::string GgufNameOf(const std::string& name) {
  for (const auto& [gguf, hf] : kGlobalNames) {
    if (hf == name) return gguf;
  }
  if (!name.starts_with("layers.")) return name;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return name;
  const std::string suffix = name.substr(dot + 1);
  for (const auto& [gguf, hf] : kLayerNames) {
    if (hf == suffix) return "blk." + name.substr(7, dot - 7) + "." + gguf;
  }
  return name;
}

// The weight dtype a bare config plans with: the embedding's, else general.file_type's.
std::string PlanningDType(const GgufModel& model) {
  if (const GgufTensor* embed = model.FindTensor("token_embd.weight")) {
    if (embed->type == GgmlType::kF32) return "float32";
    if (embed->type == GgmlType::kF16) return "float16";
    if (embed->type == GgmlType::kBF16) return "bfloat16";
  }
  const GgufValue* file_type = model.metadata().Find("general.file_type");
  const std::optional<int64_t> type = file_type ? file_type->AsInt64() : std::nullopt;
  if (type == 0) return "float32";
  if (type == 1) return "float16";
  return "bfloat16";
}

// The text decoder's config.json from the metadata under `reader`'s prefix, and the tensors
// (an assistant's under its checkpoint names).
Result<ImportedModel> ImportText(const GgufModel& model, const MetadataReader& reader, bool assistant) {
  const GgufMetadata& meta = reader.meta();
  TRY_ASSIGN(const int64_t num_layers, reader.Required("block_count"));
  if (num_layers < 1 || num_layers > kMaxLayers) {
    return reader.Bad(reader.Key("block_count") + " " + std::to_string(num_layers) + " is outside [1, " + std::to_string(kMaxLayers) + "]");
  }
  TRY_ASSIGN(const int64_t hidden, reader.Required("embedding_length"));
  TRY_ASSIGN(const int64_t context, reader.Required("context_length"));
  TRY_ASSIGN(const int64_t heads, reader.Required("attention.head_count"));
  TRY_ASSIGN(const std::vector<int64_t> kv_heads, reader.PerLayer("attention.head_count_kv", num_layers));
  TRY_ASSIGN(const std::vector<int64_t> ffn_widths, reader.PerLayer("feed_forward_length", num_layers));
  TRY_ASSIGN(const int64_t full_head_dim, reader.Required("attention.key_length"));
  TRY_ASSIGN(const int64_t full_value_dim, reader.Optional("attention.value_length", full_head_dim));
  TRY_ASSIGN(const int64_t head_dim, reader.Required("attention.key_length_swa"));
  TRY_ASSIGN(const int64_t value_dim, reader.Optional("attention.value_length_swa", head_dim));
  if (full_head_dim != full_value_dim || head_dim != value_dim) {
    return reader.Bad("key and value lengths differ (key_length " + std::to_string(full_head_dim) + ", value_length " +
                      std::to_string(full_value_dim) + ", key_length_swa " + std::to_string(head_dim) + ", value_length_swa " +
                      std::to_string(value_dim) + "); Gemma 4 has equal key and value head dims");
  }
  if (full_head_dim < 2 || head_dim < 2) return reader.Bad("attention key lengths must be at least 2");
  TRY_ASSIGN(const int64_t window, reader.Required("attention.sliding_window"));
  TRY_ASSIGN(const std::vector<bool> sliding, reader.SlidingLayers(num_layers));
  TRY_ASSIGN(const double eps, [&]() -> Result<double> {
    TRY_ASSIGN(float value, meta.GetF32(reader.Key("attention.layer_norm_rms_epsilon")));
    return static_cast<double>(value);
  }());
  TRY_ASSIGN(const int64_t shared_kv_layers, reader.Optional("attention.shared_kv_layers", 0));
  TRY_ASSIGN(const int64_t ple_dim, assistant ? reader.Optional("embedding_length_per_layer_input", 0)
                                              : reader.Required("embedding_length_per_layer_input"));
  TRY_ASSIGN(const double softcap, reader.OptionalFloat("final_logit_softcapping", 0.0));
  TRY_ASSIGN(const double full_theta, reader.OptionalFloat("rope.freq_base", 1000000.0));
  TRY_ASSIGN(const double sliding_theta, reader.OptionalFloat("rope.freq_base_swa", 10000.0));
  TRY_ASSIGN(const int64_t sliding_rope_dims, reader.Optional("rope.dimension_count_swa", head_dim));
  if (sliding_rope_dims != head_dim) {
    return reader.Unsupported(reader.Key("rope.dimension_count_swa") + " " + std::to_string(sliding_rope_dims) + " < key_length_swa " +
                              std::to_string(head_dim) + ": partial rotary on sliding layers is not Gemma 4's and not supported");
  }
  TRY_ASSIGN(const double full_rotary_factor, FullRotaryFactor(model, reader, full_head_dim));
  TRY_ASSIGN(const int64_t num_experts, reader.Optional("expert_count", 0));
  // A drafter's layers all read its target's KV (shared_kv_layers = block_count).
  if (shared_kv_layers < 0 || (shared_kv_layers >= num_layers && !assistant) || shared_kv_layers > num_layers) {
    return reader.Bad(reader.Key("attention.shared_kv_layers") + " " + std::to_string(shared_kv_layers) + " must be below block_count " +
                      std::to_string(num_layers));
  }

  ImportedModel imported;
  TRY_ASSIGN(imported.tensors, MapTensors(model, reader, num_layers, assistant));
  const bool has_tensors = !model.tensors().empty();

  // The vocabulary: the embedding's rows (the converter truncates them to the tokenizer's size).
  int64_t vocab = 0;
  const GgufValue* tokens = meta.Find("tokenizer.ggml.tokens");
  const int64_t num_tokens = tokens && tokens->type() == GgufValueType::kArray ? static_cast<int64_t>(tokens->count()) : -1;
  if (const GgufTensor* embed = model.FindTensor("token_embd.weight")) {
    if (embed->shape.size() != 2) return reader.Bad("token_embd.weight has shape " + embed->ShapeString() + "; expected {hidden, vocab}");
    vocab = embed->shape[1];
    if (num_tokens >= 0 && num_tokens != vocab) {
      return reader.Bad("token_embd.weight has " + std::to_string(vocab) + " rows but tokenizer.ggml.tokens has " +
                        std::to_string(num_tokens) + " tokens; they must agree (llama.cpp's rule)");
    }
  } else if (has_tensors) {
    return Error(ErrorCode::kNotFound, model.shards().front().name() + ": no tensor token_embd.weight");
  } else if (num_tokens > 0) {
    vocab = num_tokens;  // vocab-only file: plan with the tokenizer's size
  } else {
    return Error(ErrorCode::kNotFound, model.shards().front().name() +
                                           ": no tensors and no tokenizer.ggml.tokens; nothing gives the vocabulary size");
  }
  int64_t ple_vocab = vocab;
  if (const GgufTensor* table = model.FindTensor("per_layer_token_embd.weight"); table && table->shape.size() == 2) {
    ple_vocab = table->shape[1];
  }

  // k_eq_v: the full layers that compute their own K and V either all have attn_v or none has.
  int64_t first_with_v = -1, first_without_v = -1;
  for (int64_t i = 0; has_tensors && i < num_layers - shared_kv_layers; ++i) {
    if (sliding[static_cast<size_t>(i)]) continue;
    int64_t& first = model.FindTensor("blk." + std::to_string(i) + ".attn_v.weight") ? first_with_v : first_without_v;
    if (first < 0) first = i;
  }
  if (first_with_v >= 0 && first_without_v >= 0) {
    return reader.Bad("full layer " + std::to_string(first_with_v) + " has attn_v but full layer " + std::to_string(first_without_v) +
                      " has none; k_eq_v (no attn_v) must hold for every full layer or none");
  }
  const bool k_eq_v = first_without_v >= 0;

  json config;
  config["architectures"] = json::array({"Gemma4ForCausalLM"});
  config["model_type"] = "gemma4_text";
  config["vocab_size"] = vocab;
  config["hidden_size"] = hidden;
  config["num_hidden_layers"] = num_layers;
  config["num_attention_heads"] = heads;
  config["head_dim"] = head_dim;
  config["sliding_window"] = window;
  config["max_position_embeddings"] = context;
  config["rms_norm_eps"] = eps;
  if (softcap > 0.0) config["final_logit_softcapping"] = softcap;
  config["tie_word_embeddings"] = model.FindTensor("output.weight") == nullptr;
  config["hidden_size_per_layer_input"] = ple_dim;
  config["vocab_size_per_layer_input"] = ple_vocab;
  config["num_kv_shared_layers"] = shared_kv_layers;
  config["attention_k_eq_v"] = k_eq_v;
  config["use_double_wide_mlp"] = false;  // a double-wide file lists the doubled widths per layer
  config["dtype"] = PlanningDType(model);
  if (num_experts > 0) {
    TRY_ASSIGN(const int64_t used, reader.Required("expert_used_count"));
    TRY_ASSIGN(const int64_t width, reader.Required("expert_feed_forward_length"));
    config["enable_moe_block"] = true;
    config["num_experts"] = num_experts;
    config["top_k_experts"] = used;
    config["moe_intermediate_size"] = width;
  }
  for (const char* key : {"bos_token_id", "eos_token_id", "padding_token_id"}) {
    const std::string full = std::string("tokenizer.ggml.") + key;
    if (!meta.Has(full)) continue;
    TRY_ASSIGN(int32_t id, meta.GetI32(full));
    config[std::string(key) == "padding_token_id" ? "pad_token_id" : key] = id;
  }

  // Layer geometry: the sliding layers' KV heads are the base, every other layer says its own.
  json layer_types = json::array();
  int64_t base_kv_heads = kv_heads.front();
  for (int64_t i = 0; i < num_layers; ++i) {
    if (sliding[static_cast<size_t>(i)]) { base_kv_heads = kv_heads[static_cast<size_t>(i)]; break; }
  }
  config["num_key_value_heads"] = base_kv_heads;
  json per_layer = json::object();
  for (int64_t i = 0; i < num_layers; ++i) {
    const size_t l = static_cast<size_t>(i);
    layer_types.push_back(sliding[l] ? "sliding_attention" : "full_attention");
    json entry = json::object();
    if (!sliding[l]) entry["head_dim"] = full_head_dim;
    if (kv_heads[l] != base_kv_heads || !sliding[l]) entry["num_key_value_heads"] = kv_heads[l];
    if (!entry.empty()) per_layer[std::to_string(i)] = entry;
  }
  config["layer_types"] = layer_types;
  config["per_layer_config"] = per_layer;
  const bool uniform_width = std::all_of(ffn_widths.begin(), ffn_widths.end(), [&](int64_t w) { return w == ffn_widths.front(); });
  config["intermediate_size"] = uniform_width ? json(ffn_widths.front()) : json(ffn_widths);
  config["rope_parameters"] = {
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", sliding_theta}}},
      {"full_attention", {{"rope_type", "proportional"}, {"rope_theta", full_theta}, {"partial_rotary_factor", full_rotary_factor}}},
  };
  imported.config = std::move(config);
  imported.source_name = GgufNameOf;
  return imported;
}

}  // namespace

Result<ImportedModel> ImportGemma4Gguf(const GgufModel& model) { return ImportText(model, MetadataReader(model, "gemma4."), false); }

Result<ImportedModel> ImportGemma4AssistantGguf(const GgufModel& model) {
  const MetadataReader reader(model, "gemma4-assistant.");
  TRY_ASSIGN(ImportedModel imported, ImportText(model, reader, true));
  TRY_ASSIGN(const int64_t backbone_hidden, reader.Required("embedding_length_out"));
  json text = std::move(imported.config);
  text.erase("architectures");
  json config;
  config["architectures"] = json::array({"Gemma4AssistantForCausalLM"});
  config["model_type"] = "gemma4_assistant";
  config["backbone_hidden_size"] = backbone_hidden;
  // The centroid head when the file carries it (community conversions do; llama.cpp's does not).
  const GgufTensor* centroids = model.FindTensor("masked_embd_centroids.weight");
  const GgufTensor* ordering = model.FindTensor("masked_embd_ordering");
  if ((centroids == nullptr) != (ordering == nullptr)) {
    return reader.Bad(std::string("the centroid head needs both masked_embd_centroids.weight and masked_embd_ordering; the file has only ") +
                      (centroids ? "masked_embd_centroids.weight" : "masked_embd_ordering"));
  }
  config["use_ordered_embeddings"] = centroids != nullptr;
  if (centroids != nullptr) {
    if (centroids->shape.size() != 2) return reader.Bad("masked_embd_centroids.weight has shape " + centroids->ShapeString() + "; expected {hidden, centroids}");
    if (ordering->type != GgmlType::kI32) {
      return reader.Bad("masked_embd_ordering is " + std::string(GgmlTypeName(static_cast<uint32_t>(ordering->type))) + "; token ids are i32");
    }
    TRY_ASSIGN(const int64_t top_k, reader.Optional("masked_embedding.top_k", kDefaultCentroidTopK));
    config["num_centroids"] = centroids->shape[1];
    config["centroid_intermediate_top_k"] = top_k;
  }
  config["tie_word_embeddings"] = true;
  config["dtype"] = text["dtype"];
  config["text_config"] = std::move(text);
  imported.config = std::move(config);
  imported.source_name = nullptr;  // its weights are looked up under their checkpoint names
  return imported;
}

}  // namespace kiln
