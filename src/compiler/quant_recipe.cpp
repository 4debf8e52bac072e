#include "compiler/quant_recipe.h"

#include <algorithm>
#include <cctype>

namespace kiln {

namespace {

constexpr QuantRecipe kRecipes[] = {QuantRecipe::kQ8_0, QuantRecipe::kQ4_0, QuantRecipe::kQ4_K_M, QuantRecipe::kQ6_K,
                                    QuantRecipe::kFp8};

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// The dtype and the shape fallbacks after it, best first: llama-quantize's (q4_k -> q5_0,
// q6_k -> q8_0 where rows are not whole 256-element blocks), then q4_0 for a target without
// q5_0 kernels.
std::vector<DType> WithFallbacks(DType dtype) {
  switch (dtype) {
    case DType::kQ4_K: return {DType::kQ4_K, DType::kQ5_0, DType::kQ4_0};
    case DType::kQ6_K: return {DType::kQ6_K, DType::kQ8_0};
    default: return {dtype};
  }
}

// The recipe's dtype for a matrix that no special rule touches.
DType MatrixDType(QuantRecipe recipe) {
  switch (recipe) {
    case QuantRecipe::kQ8_0: return DType::kQ8_0;
    case QuantRecipe::kQ4_0: return DType::kQ4_0;
    case QuantRecipe::kQ4_K_M: return DType::kQ4_K;
    case QuantRecipe::kQ6_K: return DType::kQ6_K;
    case QuantRecipe::kFp8: return DType::kF8_E4M3;
    case QuantRecipe::kNone: break;
  }
  return DType::kF32;  // unreachable: kNone is refused before
}

}  // namespace

const char* QuantRecipeName(QuantRecipe recipe) {
  switch (recipe) {
    case QuantRecipe::kNone: return "none";
    case QuantRecipe::kQ8_0: return "q8_0";
    case QuantRecipe::kQ4_0: return "q4_0";
    case QuantRecipe::kQ4_K_M: return "q4_k_m";
    case QuantRecipe::kQ6_K: return "q6_k";
    case QuantRecipe::kFp8: return "fp8";
  }
  return "?";
}

std::optional<QuantRecipe> QuantRecipeFromName(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (QuantRecipe recipe : kRecipes) {
    if (lower == QuantRecipeName(recipe)) return recipe;
  }
  return std::nullopt;
}

std::string QuantRecipeNames() {
  std::string names;
  for (QuantRecipe recipe : kRecipes) names += std::string(names.empty() ? "" : ", ") + QuantRecipeName(recipe);
  return names;
}

int64_t LayerOf(std::string_view name) {
  constexpr std::string_view kPrefix = "layers.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return -1;
  int64_t layer = 0;
  size_t i = kPrefix.size();
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) layer = layer * 10 + (name[i] - '0');
  if (i == kPrefix.size() || i >= name.size() || name[i] != '.' || i - kPrefix.size() > 6) return -1;
  return layer;
}

WeightRole RoleOf(const WeightUse& use) {
  if (use.shape.size() < 2 || use.consumers.empty()) return WeightRole::kKeep;
  bool embedded = false;
  for (const WeightConsumer& consumer : use.consumers) {
    switch (consumer.op) {
      case OpKind::kEmbed: embedded = true; break;
      case OpKind::kLinear: break;
      case OpKind::kCentroidHead: if (consumer.input != 1) return WeightRole::kKeep; break;  // the head rows, as a linear's
      // Of a MoE op only the expert matrices (inputs 5 and 6) are quantized; the router and its
      // scales stay at source precision, as llama.cpp keeps ffn_gate_inp.
      case OpKind::kMoe: if (consumer.input < 5) return WeightRole::kKeep; break;
      default: return WeightRole::kKeep;  // norms, scalars: read element by element
    }
  }
  // The MTP drafter's tied head (gemma4_assistant.h) is an output embedding like lm_head.
  if (embedded || use.name == "lm_head.weight" || use.name == "mtp.embed_tokens.weight") return WeightRole::kTokenEmbedding;
  // llama.cpp never quantizes the PLE model projection (quantization.md section 4).
  if (use.name == "per_layer_model_projection.weight") return WeightRole::kKeep;
  if (LayerOf(use.name) >= 0) {
    if (EndsWith(use.name, ".self_attn.v_proj.weight")) return WeightRole::kAttentionValue;
    if (EndsWith(use.name, ".mlp.down_proj.weight") || EndsWith(use.name, ".experts.down_proj")) return WeightRole::kFfnDown;
  }
  return WeightRole::kMatrix;
}

const char* WeightRoleName(WeightRole role) {
  switch (role) {
    case WeightRole::kKeep: return "kept";
    case WeightRole::kTokenEmbedding: return "token embedding";
    case WeightRole::kAttentionValue: return "attn v";
    case WeightRole::kFfnDown: return "ffn down";
    case WeightRole::kMatrix: return "matrices";
  }
  return "?";
}

bool UseMoreBits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

Result<std::vector<std::vector<DType>>> ProposeDTypes(QuantRecipe recipe, std::span<const WeightUse> uses) {
  if (recipe == QuantRecipe::kNone) return Error(ErrorCode::kInvalidArgument, "no quantization recipe to propose dtypes for");
  for (const WeightUse& use : uses) {
    if (IsBlockDType(use.source_dtype)) {
      return Error(ErrorCode::kInvalidArgument, std::string("quantization recipe ") + QuantRecipeName(recipe) + " asked for, but tensor '" +
                                                    use.name + "' is already stored as " + DTypeName(use.source_dtype) +
                                                    "; kiln does not requantize quantized weights: load the model without a recipe (no --quant)");
    }
  }
  // use_more_bits counts attn_v tensors that exist (k_eq_v and KV-shared layers have none), in
  // layer order, and ffn_down by layer id over all layers.
  std::vector<int64_t> value_layers;
  int64_t num_layers = 0;
  for (const WeightUse& use : uses) {
    num_layers = std::max(num_layers, LayerOf(use.name) + 1);
    if (RoleOf(use) == WeightRole::kAttentionValue) value_layers.push_back(LayerOf(use.name));
  }
  std::sort(value_layers.begin(), value_layers.end());
  const int64_t num_values = static_cast<int64_t>(value_layers.size());

  std::vector<std::vector<DType>> proposals(uses.size());
  for (size_t w = 0; w < uses.size(); ++w) {
    const WeightUse& use = uses[w];
    const WeightRole role = RoleOf(use);
    // Only float sources are quantized (an i32 table, were there one, stays as it is).
    const bool float_source = use.source_dtype == DType::kF32 || use.source_dtype == DType::kBF16 || use.source_dtype == DType::kF16;
    if (role == WeightRole::kKeep || !float_source) continue;
    DType dtype = MatrixDType(recipe);
    switch (role) {
      case WeightRole::kTokenEmbedding:
        if (recipe == QuantRecipe::kFp8) continue;
        dtype = recipe == QuantRecipe::kQ8_0 ? DType::kQ8_0 : DType::kQ6_K;
        break;
      case WeightRole::kAttentionValue:
        if (recipe == QuantRecipe::kQ4_K_M) {
          const int64_t index = std::lower_bound(value_layers.begin(), value_layers.end(), LayerOf(use.name)) - value_layers.begin();
          if (UseMoreBits(index, num_values)) dtype = DType::kQ6_K;
        }
        break;
      case WeightRole::kFfnDown:
        if (recipe == QuantRecipe::kQ4_K_M && UseMoreBits(LayerOf(use.name), num_layers)) dtype = DType::kQ6_K;
        break;
      case WeightRole::kMatrix:
      case WeightRole::kKeep:
        break;
    }
    proposals[w] = WithFallbacks(dtype);
  }
  return proposals;
}

}  // namespace kiln
