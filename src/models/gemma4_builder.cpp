#include "models/gemma4_builder.h"

#include <cmath>

namespace kiln {

namespace {

// Small helpers so the layer code reads like the math. Shapes are [T, columns] unless noted.
class Gemma4GraphBuilder {
 public:
  Gemma4GraphBuilder(const Gemma4Config& config, bool hidden_output) : config_(config), hidden_output_(hidden_output) {}

  Result<Graph> Build();

 private:
  int32_t Weight(const std::string& name, std::vector<int64_t> shape) {
    Shape s;
    for (int64_t d : shape) s.dims.push_back(Const(d));
    return graph_.AddWeight(name, config_.weight_dtype, s);
  }
  int32_t Op(OpKind kind, const std::string& name, std::vector<int32_t> inputs, int64_t columns,
             OpAttrs attrs = {}, Dim rows = Tokens()) {
    return graph_.AddOp(kind, name, std::move(inputs), attrs, DType::kF32, Shape{{rows, Const(columns)}});
  }
  int32_t Norm(const std::string& name, int32_t x, int32_t weight, int64_t columns, int64_t group) {
    OpAttrs attrs;
    attrs.group_size = group;
    attrs.eps = config_.rms_norm_eps;
    return Op(OpKind::kRmsNorm, name, {x, weight}, columns, attrs);
  }
  int32_t Linear(const std::string& name, int32_t x, int32_t weight, int64_t out_columns) {
    return Op(OpKind::kLinear, name, {x, weight}, out_columns);
  }
  int32_t Add(const std::string& name, int32_t a, int32_t b) {
    return Op(OpKind::kAdd, name, {a, b}, config_.hidden_size);
  }
  int32_t Scale(const std::string& name, int32_t x, float scale, int64_t columns) {
    OpAttrs attrs;
    attrs.scale = scale;
    return Op(OpKind::kScale, name, {x}, columns, attrs);
  }

  int32_t Attention(int64_t index, int32_t h, int32_t positions, int32_t sequences);
  int32_t FeedForward(int64_t index, int32_t x);
  int32_t PerLayerInput(int64_t index, int32_t x, int32_t ple);

  const Gemma4Config& config_;
  const bool hidden_output_;
  Graph graph_;
  std::vector<int32_t> cache_of_layer_;
};

int32_t Gemma4GraphBuilder::Attention(int64_t i, int32_t h, int32_t positions, int32_t sequences) {
  const Gemma4LayerConfig& layer = config_.layers[static_cast<size_t>(i)];
  const std::string p = "layers." + std::to_string(i) + ".self_attn.";
  const int64_t d = layer.head_dim, H = config_.hidden_size;
  const int64_t q_columns = config_.num_heads * d, kv_columns = layer.num_kv_heads * d;
  OpAttrs rope;
  rope.head_dim = d;
  rope.rope_theta = layer.rope_theta;
  rope.rotary_dims = layer.rotary_dims;

  // The projections first, one after another: a backend may stream them as one pass over h.
  int32_t q = Linear(p + "q", h, Weight(p + "q_proj.weight", {q_columns, H}), q_columns);  // (T, heads*d)
  int32_t k_raw = -1, v_raw = -1;
  if (!layer.kv_shared()) {
    k_raw = Linear(p + "k", h, Weight(p + "k_proj.weight", {kv_columns, H}), kv_columns);
    // k_eq_v: V is the raw k projection, before any norm or RoPE.
    v_raw = layer.k_eq_v ? k_raw : Linear(p + "v", h, Weight(p + "v_proj.weight", {kv_columns, H}), kv_columns);
  }
  q = Norm(p + "q_norm", q, Weight(p + "q_norm.weight", {d}), q_columns, d);
  q = Op(OpKind::kRope, p + "q_rope", {q, positions}, q_columns, rope);

  if (!layer.kv_shared()) {
    int32_t k = Norm(p + "k_norm", k_raw, Weight(p + "k_norm.weight", {d}), kv_columns, d);
    k = Op(OpKind::kRope, p + "k_rope", {k, positions}, kv_columns, rope);
    int32_t v = Norm(p + "v_norm", v_raw, /*weight=*/-1, kv_columns, d);  // weightless RMSNorm
    OpAttrs append;
    append.head_dim = d;
    append.num_kv_heads = layer.num_kv_heads;
    append.cache_index = cache_of_layer_[static_cast<size_t>(i)];
    graph_.AddSideEffectOp(OpKind::kKvAppend, p + "kv_append", {k, v, positions, sequences}, append);
  }
  OpAttrs attention;
  attention.head_dim = d;
  attention.num_heads = config_.num_heads;
  attention.num_kv_heads = layer.num_kv_heads;
  attention.window = layer.window;
  attention.scale = 1.0f;  // Gemma 4: no 1/sqrt(d), q/k norms instead
  attention.cache_index = cache_of_layer_[static_cast<size_t>(layer.kv_source_layer)];
  int32_t o = Op(OpKind::kAttention, p + "attention", {q, positions, sequences}, q_columns, attention);
  return Linear(p + "o", o, Weight(p + "o_proj.weight", {H, q_columns}), H);
}

int32_t Gemma4GraphBuilder::FeedForward(int64_t i, int32_t x) {
  const Gemma4LayerConfig& layer = config_.layers[static_cast<size_t>(i)];
  const std::string p = "layers." + std::to_string(i) + ".";
  const int64_t H = config_.hidden_size, I = layer.intermediate_size;
  int32_t h = Norm(p + "pre_feedforward_layernorm", x, Weight(p + "pre_feedforward_layernorm.weight", {H}), H, H);
  int32_t gate = Linear(p + "mlp.gate", h, Weight(p + "mlp.gate_proj.weight", {I, H}), I);
  int32_t up = Linear(p + "mlp.up", h, Weight(p + "mlp.up_proj.weight", {I, H}), I);
  int32_t y = Op(OpKind::kGeluMul, p + "mlp.gelu_mul", {gate, up}, I);
  y = Linear(p + "mlp.down", y, Weight(p + "mlp.down_proj.weight", {H, I}), H);
  if (layer.moe) {
    const int64_t E = config_.num_experts, M = config_.moe_intermediate_size;
    y = Norm(p + "post_feedforward_layernorm_1", y, Weight(p + "post_feedforward_layernorm_1.weight", {H}), H, H);
    int32_t h2 = Norm(p + "pre_feedforward_layernorm_2", x, Weight(p + "pre_feedforward_layernorm_2.weight", {H}), H, H);
    OpAttrs moe;
    moe.top_k = config_.top_k_experts;
    moe.eps = config_.rms_norm_eps;
    // The router reads the un-normed residual x; the experts read h2.
    int32_t z = Op(OpKind::kMoe, p + "moe", {x, h2, Weight(p + "router.proj.weight", {E, H}),
                                             Weight(p + "router.scale", {H}), Weight(p + "router.per_expert_scale", {E}),
                                             Weight(p + "experts.gate_up_proj", {E, 2 * M, H}),
                                             Weight(p + "experts.down_proj", {E, H, M})}, H, moe);
    z = Norm(p + "post_feedforward_layernorm_2", z, Weight(p + "post_feedforward_layernorm_2.weight", {H}), H, H);
    y = Add(p + "moe_add", y, z);
  }
  return Norm(p + "post_feedforward_layernorm", y, Weight(p + "post_feedforward_layernorm.weight", {H}), H, H);
}

int32_t Gemma4GraphBuilder::PerLayerInput(int64_t i, int32_t x, int32_t ple) {
  const std::string p = "layers." + std::to_string(i) + ".";
  const int64_t H = config_.hidden_size, P = config_.ple_dim;
  int32_t gate = Linear(p + "per_layer_input_gate", x, Weight(p + "per_layer_input_gate.weight", {P, H}), P);
  OpAttrs slice;
  slice.column_offset = i * P;
  int32_t layer_input = Op(OpKind::kSliceColumns, p + "per_layer_input", {ple}, P, slice);  // ple[:, i, :]
  int32_t g = Op(OpKind::kGeluMul, p + "per_layer_gelu_mul", {gate, layer_input}, P);
  int32_t y = Linear(p + "per_layer_projection", g, Weight(p + "per_layer_projection.weight", {H, P}), H);
  return Norm(p + "post_per_layer_input_norm", y, Weight(p + "post_per_layer_input_norm.weight", {H}), H, H);
}

Result<Graph> Gemma4GraphBuilder::Build() {
  const int64_t H = config_.hidden_size, V = config_.vocab_size, L = config_.num_layers;
  // One cache per layer that computes K/V; shared layers read their donor's.
  for (const Gemma4LayerConfig& layer : config_.layers) {
    cache_of_layer_.push_back(layer.kv_shared()
        ? cache_of_layer_[static_cast<size_t>(layer.kv_source_layer)]
        : graph_.AddCache({"layers." + std::to_string(layer.self_index), layer.num_kv_heads, layer.head_dim, layer.window}));
  }
  const int32_t ids = graph_.AddInput("token_ids", DType::kI32, Shape{{Tokens()}});
  const int32_t positions = graph_.AddInput("positions", DType::kI32, Shape{{Tokens()}});
  const int32_t sequences = graph_.AddInput("sequences", DType::kI32, Shape{{Tokens()}});
  const int32_t logit_rows = graph_.AddInput("logit_rows", DType::kI32, Shape{{Rows()}});
  const int32_t embed_table = Weight("embed_tokens.weight", {V, H});
  OpAttrs embed;
  embed.scale = std::sqrt(static_cast<float>(H));
  int32_t x = Op(OpKind::kEmbed, "embed", {ids, embed_table}, H, embed);  // (T, H)

  int32_t ple = -1;  // (T, L*P): per-layer inputs, layer i in columns [i*P, (i+1)*P)
  if (config_.ple_dim > 0) {
    const int64_t P = config_.ple_dim;
    OpAttrs ple_embed;
    ple_embed.scale = std::sqrt(static_cast<float>(P));
    int32_t token_part = Op(OpKind::kEmbed, "per_layer_embed", {ids, Weight("embed_tokens_per_layer.weight", {config_.ple_vocab_size, L * P})}, L * P, ple_embed);
    int32_t context = Linear("per_layer_model_projection", x, Weight("per_layer_model_projection.weight", {L * P, H}), L * P);
    context = Scale("per_layer_model_projection_scale", context, 1.0f / std::sqrt(static_cast<float>(H)), L * P);
    context = Norm("per_layer_projection_norm", context, Weight("per_layer_projection_norm.weight", {P}), L * P, P);
    ple = Op(OpKind::kAdd, "per_layer_inputs_sum", {context, token_part}, L * P);
    ple = Scale("per_layer_inputs", ple, 1.0f / std::sqrt(2.0f), L * P);
  }

  for (int64_t i = 0; i < L; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    int32_t h = Norm(p + "input_layernorm", x, Weight(p + "input_layernorm.weight", {H}), H, H);
    int32_t a = Attention(i, h, positions, sequences);
    a = Norm(p + "post_attention_layernorm", a, Weight(p + "post_attention_layernorm.weight", {H}), H, H);
    x = Add(p + "attention_residual", x, a);
    x = Add(p + "mlp_residual", x, FeedForward(i, x));
    if (ple >= 0) x = Add(p + "per_layer_residual", x, PerLayerInput(i, x, ple));
    x = graph_.AddOp(OpKind::kScaleByWeight, p + "layer_scalar", {x, Weight(p + "layer_scalar", {1})}, {},
                     DType::kF32, Shape{{Tokens(), Const(H)}});
  }

  // Only the rows whose logits are wanted go through the final norm and the LM head.
  const Dim rows = Rows();
  x = Op(OpKind::kGatherRows, "logit_rows", {x, logit_rows}, H, {}, rows);
  x = Op(OpKind::kRmsNorm, "norm", {x, Weight("norm.weight", {H})}, H, OpAttrs{.eps = config_.rms_norm_eps, .group_size = H}, rows);
  if (hidden_output_) graph_.MarkOutput(x);
  const int32_t head = config_.tie_word_embeddings ? embed_table : Weight("lm_head.weight", {V, H});
  int32_t logits = Op(OpKind::kLinear, "lm_head", {x, head}, V, {}, rows);
  if (config_.final_logit_softcap > 0.0f) {
    OpAttrs cap;
    cap.softcap = config_.final_logit_softcap;
    logits = Op(OpKind::kSoftcap, "logits", {logits}, V, cap, rows);
  }
  graph_.MarkOutput(logits);
  TRY(graph_.Validate());
  return std::move(graph_);
}

}  // namespace

Result<Graph> BuildGemma4Graph(const Gemma4Config& config, bool hidden_output) {
  if (config.layers.empty()) return Error(ErrorCode::kInvalidArgument, "config has no layers");
  return Gemma4GraphBuilder(config, hidden_output).Build();
}

}  // namespace kiln
