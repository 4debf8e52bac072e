// The Gemma 4 MoE block (docs/gemma4.md §4.8), per token:
//   r = rms(x) * router.scale * H^-1/2;  probs = softmax(router.proj @ r)
//   top-k over probs, renormalised, times per_expert_scale[e]
//   y = sum_e w_e * down[e] @ (gelu(gate_up[e][:M] @ h) * (gate_up[e][M:] @ h))
// Scratch: [E + 3M + H] floats (router logits, gate_up output, activation, router input /
// expert output) and E int32 (expert order), then, for block-format experts, h and the
// activation rounded to int8 (quant_int8.h). Tokens run one after the
// other; each matrix-vector product is parallel over its rows.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/cpu/kernel_context.h"

namespace kiln::cpu {


void MoeKernel(const KernelContext& c) {
  const TensorArg &x = c.inputs[0], &h = c.inputs[1], &router = c.inputs[2], &router_scale = c.inputs[3],
                  &expert_scale = c.inputs[4], &gate_up = c.inputs[5], &down = c.inputs[6];
  const int64_t H = x.columns, E = router.rows;
  const int64_t mi = down.columns / H;  // down is [E, H, M]: columns = H * M
  const int64_t top_k = c.op->attrs.top_k;
  float* logits = c.scratch;             // [E]
  float* gate_up_out = logits + E;       // [2M]
  float* activation = gate_up_out + 2 * mi;  // [M]
  float* routed = activation + mi;       // [H]: router input, then each expert's output
  int32_t* order = reinterpret_cast<int32_t*>(routed + H);  // [E]: experts by probability
  // The int8 activations (quant_int8.h), 64-byte aligned after `order`: h once per token for
  // every expert's gate_up, each expert's activation for its down.
  uint8_t* h_int8 = reinterpret_cast<uint8_t*>(c.scratch) + MoeFloatScratchBytes(E, mi, H);
  uint8_t* activation_int8 = h_int8 + Int8ScratchBytes(gate_up.dtype, 1, H);
  for (int64_t t = 0; t < x.rows; ++t) {
    const float* xt = x.f32() + t * H;
    double sum_squares = 0.0;
    for (int64_t j = 0; j < H; ++j) sum_squares += static_cast<double>(xt[j]) * xt[j];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(H) + c.op->attrs.eps));
    const float root = 1.0f / std::sqrt(static_cast<float>(H));
    for (int64_t j = 0; j < H; ++j) routed[j] = xt[j] * inv * WeightAt(router_scale, j) * root;
    MatVec(c, routed, router, 0, E, H, logits);
    const float max_logit = *std::max_element(logits, logits + E);
    double total = 0.0;
    for (int64_t e = 0; e < E; ++e) total += std::exp(static_cast<double>(logits[e] - max_logit));
    std::iota(order, order + E, 0);
    std::partial_sort(order, order + top_k, order + E,
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    double chosen_mass = 0.0;
    for (int64_t k = 0; k < top_k; ++k) chosen_mass += std::exp(static_cast<double>(logits[order[k]] - max_logit)) / total;
    float* yt = c.output.f32() + t * H;
    std::fill(yt, yt + H, 0.0f);
    const float* ht = h.f32() + t * H;
    const void* h_rounded = QuantizeActivations(c, gate_up.dtype, ht, 1, H, h_int8);
    for (int64_t k = 0; k < top_k; ++k) {
      const int64_t e = order[k];
      const double probability = std::exp(static_cast<double>(logits[e] - max_logit)) / total;
      const float weight = static_cast<float>(probability / chosen_mass) * WeightAt(expert_scale, e);
      if (h_rounded != nullptr) {
        MatVecInt8(c, h_rounded, gate_up, e * 2 * mi * H, 2 * mi, H, gate_up_out);
      } else {
        MatVec(c, ht, gate_up, e * 2 * mi * H, 2 * mi, H, gate_up_out);
      }
      c.dot->math->gelu_mul(gate_up_out, gate_up_out + mi, activation, mi);
      // `routed` is reused as the expert output.
      if (const void* rounded = QuantizeActivations(c, down.dtype, activation, 1, mi, activation_int8)) {
        MatVecInt8(c, rounded, down, e * H * mi, H, mi, routed);
      } else {
        MatVec(c, activation, down, e * H * mi, H, mi, routed);
      }
      for (int64_t j = 0; j < H; ++j) yt[j] += weight * routed[j];
    }
  }
}

}  // namespace kiln::cpu
