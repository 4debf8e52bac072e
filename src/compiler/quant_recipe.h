// Quantization recipes: which block format each weight of a model is stored in.
//
// A recipe is a name a llama.cpp or Ollama user knows (q8_0, q4_0, q4_k_m, q6_k) or kiln's fp8,
// and a rule per kind of weight, after llama-quantize's (quantization.md section 4):
//
//   recipe   matrices                         token embedding (tied LM head)   kept at source
//   q8_0     q8_0                             q8_0                             norms, scalars,
//   q4_0     q4_0                             q6_k                             1-D tensors, the
//   q4_k_m   q4_k; attn v_proj and ffn        q6_k                             MoE router,
//            down_proj q6_k where                                              per_layer_model_
//            use_more_bits(i, n) holds                                         projection
//   q6_k     q6_k                             q6_k
//   fp8      f8_e4m3 (1x128 blocks)           source (FP8 checkpoints keep embed_tokens and
//                                             lm_head in bf16, quantization.md section 6)
//
// Gemma ties the LM head to the token embedding: one tensor read by the embed gather and by the
// lm_head linear, so it takes the output rule (q6_k unless the recipe is q8_0), as llama.cpp's
// TOKEN_EMBD category does; an untied lm_head.weight takes the same rule.
//
// A block format needs whole blocks per row (the input dimension). Where a row is not, the
// choice falls back: q4_k -> q4_0 (32-element blocks; llama.cpp picks q5_0 here, which kiln reads
// from GGUF but its recipes do not yet write), q6_k -> q8_0; when nothing fits, the weight keeps its source dtype. The recipe
// only proposes: ChooseStoredDTypes (quantize_pass.h) takes the first candidate that fits the
// rows and that the target's catalog runs for every op reading the weight.
//
//   auto recipe = QuantRecipeFromName("q4_k_m");                 // nullopt for unknown names
//   std::vector<std::vector<DType>> candidates = TRY(ProposeDTypes(*recipe, uses));
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "graph/graph.h"

namespace kiln {

// The numbering is stored in .kiln files: append, never renumber.
enum class QuantRecipe : uint8_t {
  kNone = 0,   // every weight as the checkpoint stores it
  kQ8_0 = 1,
  kQ4_0 = 2,
  kQ4_K_M = 3,
  kQ6_K = 4,
  kFp8 = 5,
};
inline constexpr int kNumQuantRecipes = 6;

// "none", "q8_0", "q4_0", "q4_k_m", "q6_k", "fp8".
const char* QuantRecipeName(QuantRecipe recipe);
// The inverse of QuantRecipeName for the five recipes (not "none"), case-insensitive; nullopt
// for anything else.
std::optional<QuantRecipe> QuantRecipeFromName(std::string_view name);
// "q8_0, q4_0, q4_k_m, q6_k, fp8": for error messages and usage text.
std::string QuantRecipeNames();
inline bool IsKnownQuantRecipe(uint8_t value) { return value < kNumQuantRecipes; }

// An op input that reads a weight.
struct WeightConsumer {
  OpKind op = OpKind::kLinear;
  int32_t input = 0;  // index into the op's inputs
};

// What a recipe sees of one weight binding.
struct WeightUse {
  std::string name;                       // graph name: "layers.3.self_attn.v_proj.weight"
  DType source_dtype = DType::kBF16;
  std::vector<int64_t> shape;             // rows last: [N, K] for a linear, [E, N, K] for experts
  std::vector<WeightConsumer> consumers;  // every op input reading it, over all step functions
};

// The role that decides a weight's rule.
enum class WeightRole : uint8_t {
  kKeep,            // norms, scalars, 1-D, the MoE router, per_layer_model_projection
  kTokenEmbedding,  // read by an embed gather (and, tied, by the LM head), or an untied lm_head
  kAttentionValue,  // layers.N.self_attn.v_proj.weight
  kFfnDown,         // layers.N.mlp.down_proj.weight, layers.N.experts.down_proj
  kMatrix,          // every other weight read as a matrix
};
WeightRole RoleOf(const WeightUse& use);
const char* WeightRoleName(WeightRole role);  // "kept", "token embedding", "attn v", "ffn down", "matrices"
// The layer a weight belongs to ("layers.N." prefix), or -1.
int64_t LayerOf(std::string_view name);

// llama.cpp's extra-bits rule: the first and last eighth of n, and every third one between.
bool UseMoreBits(int64_t i, int64_t n);

// Per weight, the dtypes to store it in, best first, shape fallbacks included; empty: keep the
// source dtype. kInvalidArgument when a weight is already in a block format (kiln does not
// requantize quantized weights) or the recipe is kNone.
Result<std::vector<std::vector<DType>>> ProposeDTypes(QuantRecipe recipe, std::span<const WeightUse> uses);

}  // namespace kiln
