#include "models/gemma4_assistant.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace kiln {

namespace {

using json = nlohmann::json;

Error Bad(const std::string& what) { return Error(ErrorCode::kMalformed, "assistant config.json: " + what); }
Error Unsupported(const std::string& what) { return Error(ErrorCode::kUnsupported, "assistant config.json: " + what); }
Error Mismatch(const std::string& what) { return Error(ErrorCode::kInvalidArgument, "the MTP assistant does not fit its target: " + what); }

std::string ModelType(const json& document) {
  auto it = document.find("model_type");
  return it != document.end() && it->is_string() ? it->get<std::string>() : "";
}

// The drafter's layers as a small graph writer: each helper appends one op.
class DraftGraphBuilder {
 public:
  DraftGraphBuilder(const Gemma4Config& target, const Gemma4AssistantConfig& assistant) : target_(target), assistant_(assistant) {}
  Result<Graph> Build(const Graph& target_graph);

 private:
  int32_t Weight(const std::string& name, std::vector<int64_t> shape, DType dtype) {
    Shape s;
    for (int64_t d : shape) s.dims.push_back(Const(d));
    return graph_.AddWeight(name, dtype, s);
  }
  int32_t Mtp(const std::string& name, std::vector<int64_t> shape) { return Weight("mtp." + name, std::move(shape), text().weight_dtype); }
  int32_t Op(OpKind kind, const std::string& name, std::vector<int32_t> inputs, int64_t columns, OpAttrs attrs = {}, Dim rows = Tokens()) {
    return graph_.AddOp(kind, name, std::move(inputs), attrs, DType::kF32, Shape{{rows, Const(columns)}});
  }
  int32_t Norm(const std::string& name, int32_t x, int32_t weight, int64_t columns, int64_t group, Dim rows = Tokens()) {
    OpAttrs attrs;
    attrs.group_size = group;
    attrs.eps = text().rms_norm_eps;
    return Op(OpKind::kRmsNorm, name, {x, weight}, columns, attrs, rows);
  }
  int32_t Linear(const std::string& name, int32_t x, int32_t weight, int64_t columns, Dim rows = Tokens()) {
    return Op(OpKind::kLinear, name, {x, weight}, columns, {}, rows);
  }
  const Gemma4Config& text() const { return assistant_.text; }
  Result<int32_t> Layer(int64_t index, int32_t x);

  const Gemma4Config& target_;
  const Gemma4AssistantConfig& assistant_;
  Graph graph_;
  int32_t positions_ = -1, read_positions_ = -1, sequences_ = -1;
  int32_t sliding_cache_ = -1, full_cache_ = -1;  // the target caches the layers read
};

Result<int32_t> DraftGraphBuilder::Layer(int64_t i, int32_t x) {
  const Gemma4LayerConfig& layer = text().layers[static_cast<size_t>(i)];
  const std::string p = "mtp.layers." + std::to_string(i) + ".";
  const std::string w = "layers." + std::to_string(i) + ".";
  const int64_t H = text().hidden_size, d = layer.head_dim, heads = text().num_heads;
  const bool sliding = layer.attention == AttentionType::kSliding;
  const int32_t cache_index = sliding ? sliding_cache_ : full_cache_;
  const CacheDecl& cache = graph_.caches()[static_cast<size_t>(cache_index)];
  const std::string kind = sliding ? "sliding" : "full";
  if (cache.head_dim != d) {
    return Mismatch("its " + kind + " layer " + std::to_string(i) + " has head_dim " + std::to_string(d) + ", the target's " + kind +
                    " cache '" + cache.name + "' " + std::to_string(cache.head_dim));
  }
  if (heads % cache.num_kv_heads != 0) {
    return Mismatch(std::to_string(heads) + " query heads do not group over the " + std::to_string(cache.num_kv_heads) +
                    " KV heads of the target's cache '" + cache.name + "'");
  }
  if (sliding && (layer.window < 1 || layer.window > cache.window)) {
    return Mismatch("its sliding window " + std::to_string(layer.window) + " exceeds the target's " + std::to_string(cache.window));
  }
  const int64_t q_columns = heads * d;
  int32_t h = Norm(p + "input_layernorm", x, Mtp(w + "input_layernorm.weight", {H}), H, H);
  int32_t q = Linear(p + "self_attn.q", h, Mtp(w + "self_attn.q_proj.weight", {q_columns, H}), q_columns);
  q = Norm(p + "self_attn.q_norm", q, Mtp(w + "self_attn.q_norm.weight", {d}), q_columns, d);
  OpAttrs rope;
  rope.head_dim = d;
  rope.rope_theta = layer.rope_theta;
  rope.rotary_dims = layer.rotary_dims;
  q = Op(OpKind::kRope, p + "self_attn.q_rope", {q, positions_}, q_columns, rope);
  OpAttrs attention;
  attention.head_dim = d;
  attention.num_heads = heads;
  attention.num_kv_heads = cache.num_kv_heads;
  attention.window = sliding ? layer.window : 0;
  attention.scale = 1.0f;
  attention.cache_index = cache_index;
  int32_t o = Op(OpKind::kAttention, p + "self_attn.attention", {q, read_positions_, sequences_}, q_columns, attention);
  o = Linear(p + "self_attn.o", o, Mtp(w + "self_attn.o_proj.weight", {H, q_columns}), H);
  o = Norm(p + "post_attention_layernorm", o, Mtp(w + "post_attention_layernorm.weight", {H}), H, H);
  x = Op(OpKind::kAdd, p + "attention_residual", {x, o}, H);

  const int64_t I = layer.intermediate_size;
  h = Norm(p + "pre_feedforward_layernorm", x, Mtp(w + "pre_feedforward_layernorm.weight", {H}), H, H);
  int32_t gate = Linear(p + "mlp.gate", h, Mtp(w + "mlp.gate_proj.weight", {I, H}), I);
  int32_t up = Linear(p + "mlp.up", h, Mtp(w + "mlp.up_proj.weight", {I, H}), I);
  int32_t y = Op(OpKind::kGeluMul, p + "mlp.gelu_mul", {gate, up}, I);
  y = Linear(p + "mlp.down", y, Mtp(w + "mlp.down_proj.weight", {H, I}), H);
  y = Norm(p + "post_feedforward_layernorm", y, Mtp(w + "post_feedforward_layernorm.weight", {H}), H, H);
  x = Op(OpKind::kAdd, p + "mlp_residual", {x, y}, H);
  return graph_.AddOp(OpKind::kScaleByWeight, p + "layer_scalar", {x, Mtp(w + "layer_scalar", {1})}, {}, DType::kF32,
                      Shape{{Tokens(), Const(H)}});
}

Result<Graph> DraftGraphBuilder::Build(const Graph& target_graph) {
  const int64_t Hb = target_.hidden_size, Hd = text().hidden_size, V = target_.vocab_size;
  if (assistant_.backbone_hidden_size != Hb) {
    return Mismatch("its backbone_hidden_size is " + std::to_string(assistant_.backbone_hidden_size) + ", the target's hidden size " +
                    std::to_string(Hb));
  }
  if (text().vocab_size != V) {
    return Mismatch("its vocabulary has " + std::to_string(text().vocab_size) + " tokens, the target's " + std::to_string(V));
  }
  // The same caches as the target's step graph, so that cache indices agree; the layers read the
  // last sliding and the last full target layer that compute K/V.
  int32_t cache = 0;
  for (const Gemma4LayerConfig& layer : target_.layers) {
    if (layer.kv_shared()) continue;
    (layer.attention == AttentionType::kSliding ? sliding_cache_ : full_cache_) = cache++;
  }
  for (const CacheDecl& decl : target_graph.caches()) graph_.AddCache(decl);
  if (cache != static_cast<int32_t>(target_graph.caches().size())) {
    return Error(ErrorCode::kInternal, "the target graph's caches disagree with its config");
  }
  for (const Gemma4LayerConfig& layer : text().layers) {
    if ((layer.attention == AttentionType::kSliding ? sliding_cache_ : full_cache_) < 0) {
      return Mismatch(std::string("the target has no ") + (layer.attention == AttentionType::kSliding ? "sliding" : "full") +
                      " attention layer to read");
    }
  }

  const int32_t ids = graph_.AddInput("token_ids", DType::kI32, Shape{{Tokens()}});
  positions_ = graph_.AddInput("positions", DType::kI32, Shape{{Tokens()}});
  sequences_ = graph_.AddInput("sequences", DType::kI32, Shape{{Tokens()}});
  const int32_t logit_rows = graph_.AddInput("logit_rows", DType::kI32, Shape{{Rows()}});
  read_positions_ = graph_.AddInput("read_positions", DType::kI32, Shape{{Tokens()}});
  const int32_t hidden = graph_.AddInput("hidden", DType::kF32, Shape{{Tokens(), Const(Hb)}});

  OpAttrs embed;
  embed.scale = std::sqrt(static_cast<float>(Hb));
  const int32_t e = Op(OpKind::kEmbed, "mtp.embed", {ids, Weight("embed_tokens.weight", {V, Hb}, target_.weight_dtype)}, Hb, embed);
  int32_t x = Op(OpKind::kConcatColumns, "mtp.input", {e, hidden}, 2 * Hb);  // embedding first, then h
  x = Linear("mtp.pre_projection", x, Mtp("pre_projection.weight", {Hd, 2 * Hb}), Hd);
  for (int64_t i = 0; i < text().num_layers; ++i) {
    TRY_ASSIGN(x, Layer(i, x));
  }

  const Dim rows = Rows();
  x = Op(OpKind::kGatherRows, "mtp.logit_rows", {x, logit_rows}, Hd, {}, rows);
  x = Norm("mtp.norm", x, Mtp("norm.weight", {Hd}), Hd, Hd, rows);
  // Outputs in declaration order: the next hidden state, then the logits (no softcap).
  graph_.MarkOutput(Linear("mtp.post_projection", x, Mtp("post_projection.weight", {Hb, Hd}), Hb, rows));
  const int32_t head = Mtp("embed_tokens.weight", {V, Hd});
  int32_t logits = -1;
  if (assistant_.ordered_embeddings) {
    // Only the tokens of the best centroids are computed (top_k * V / C head rows, 4,096 of
    // 262,144 in E2B/E4B), as transformers' sparse head; every other logit is their least - 1.
    const int64_t C = assistant_.num_centroids;
    const int32_t scores = Linear("mtp.centroids", x, Mtp("masked_embedding.centroids.weight", {C, Hd}), C, rows);
    OpAttrs attrs;
    attrs.top_k = assistant_.centroid_top_k;
    logits = Op(OpKind::kCentroidHead, "mtp.centroid_head", {x, head, scores, Weight("mtp.masked_embedding.token_ordering", {V}, DType::kI32)},
                V, attrs, rows);
  } else {
    logits = Linear("mtp.lm_head", x, head, V, rows);
  }
  graph_.MarkOutput(logits);
  TRY(graph_.Validate());
  return std::move(graph_);
}

}  // namespace

bool IsGemma4AssistantConfig(const nlohmann::json& document) {
  if (!document.is_object()) return false;
  const std::string type = ModelType(document);
  return type == "gemma4_assistant" || type == "gemma4_unified_assistant";
}

Result<Gemma4AssistantConfig> ParseGemma4AssistantConfig(const nlohmann::json& document) {
  if (!IsGemma4AssistantConfig(document)) {
    return Unsupported("model_type '" + ModelType(document) + "' is not a Gemma 4 assistant (gemma4_assistant, gemma4_unified_assistant)");
  }
  Gemma4AssistantConfig config;
  config.model_type = ModelType(document);
  const bool unified = config.model_type == "gemma4_unified_assistant";
  auto number = [&](const char* key, int64_t fallback) -> Result<int64_t> {
    auto it = document.find(key);
    if (it == document.end() || it->is_null()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() <= 0) return Bad(std::string("'") + key + "' must be a positive integer");
    return it->get<int64_t>();
  };
  // transformers' defaults when absent: 1536 (gemma4_assistant), 3840 (the 12B's unified one).
  TRY_ASSIGN(config.backbone_hidden_size, number("backbone_hidden_size", unified ? 3840 : 1536));
  if (auto it = document.find("use_ordered_embeddings"); it != document.end() && !it->is_null()) {
    if (!it->is_boolean()) return Bad("'use_ordered_embeddings' must be true or false");
    config.ordered_embeddings = it->get<bool>();
  }
  TRY_ASSIGN(config.num_centroids, number("num_centroids", 2048));
  TRY_ASSIGN(config.centroid_top_k, number("centroid_intermediate_top_k", 32));
  auto text = document.find("text_config");
  if (text == document.end() || !text->is_object()) return Bad("'text_config' is missing or not an object");
  // Every layer reads the target's K/V (num_kv_shared_layers = num_hidden_layers in the file); for
  // the layer table each is its own layer.
  json decoder = *text;
  decoder["num_kv_shared_layers"] = 0;
  if (!decoder.contains("model_type")) decoder["model_type"] = "gemma4_text";
  if (!decoder.contains("dtype") && document.contains("dtype")) decoder["dtype"] = document["dtype"];
  Result<Gemma4Config> parsed = ParseGemma4Config(decoder);
  if (!parsed) return parsed.error().WithContext("assistant text_config");
  config.text = std::move(parsed).value();
  if (config.text.ple_dim != 0) return Unsupported("text_config.hidden_size_per_layer_input must be 0 in an assistant");
  if (config.text.num_experts != 0) return Unsupported("an assistant with MoE layers is not supported");
  if (config.text.final_logit_softcap != 0.0f) return Unsupported("final_logit_softcapping in an assistant is not supported");
  for (const Gemma4LayerConfig& layer : config.text.layers) {
    if (layer.moe) return Unsupported("an assistant with MoE layers is not supported");
  }
  if (config.ordered_embeddings && config.text.vocab_size % config.num_centroids != 0) {
    return Bad("num_centroids " + std::to_string(config.num_centroids) + " does not divide the vocabulary of " +
               std::to_string(config.text.vocab_size) + " tokens");
  }
  if (config.ordered_embeddings && config.centroid_top_k > config.num_centroids) {
    return Bad("centroid_intermediate_top_k " + std::to_string(config.centroid_top_k) + " exceeds num_centroids " +
               std::to_string(config.num_centroids));
  }
  return config;
}

Result<Graph> BuildGemma4DraftGraph(const Gemma4Config& target, const Graph& target_graph, const Gemma4AssistantConfig& assistant) {
  if (assistant.text.layers.empty()) return Error(ErrorCode::kInvalidArgument, "the assistant has no layers");
  return DraftGraphBuilder(target, assistant).Build(target_graph);
}

}  // namespace kiln
