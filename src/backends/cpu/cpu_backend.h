// The CPU backend: complete, not a fallback. f32 activations and KV cache, f32/bf16/f16 weights
// used in place from the mmap'd source, a persistent thread pool, dot products dispatched once
// to the best ISA this CPU has (generic, AVX2, AVX-512). Linear, embedding and MoE weights may
// also be in a block format (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, f8_e4m3): linear and
// MoE multiply them with activations rounded to int8 in planned scratch (simd/quant_int8.h; not
// f8_e4m3, the generic table or KILN_CPU_INT8_ACTIVATIONS=0, which dequantize in registers as
// the weights stream: simd/quant_dot.h); ops that read weights element by element refuse them.
//
// Guard mode (a Program compiled with CompileOptions::guard): every arena tensor is surrounded
// by canary bytes, written when the tensor is first produced and checked after every op; a
// kernel writing outside its tensor fails the step with an error naming the op and the tensor.
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace kiln {

class CpuBackend : public Backend {
 public:
  std::string target_name() const override;  // "cpu (avx512)"
  int64_t MemoryCapacity() const override;
  int64_t alignment_bytes() const override { return 64; }
  Status CheckOp(const Graph& graph, const Op& op) const override;
  int64_t ScratchBytes(const Graph& graph, const Op& op, int64_t max_tokens, int64_t max_context) const override;
  Result<std::unique_ptr<PlacedModel>> PlaceModel(const Program& program, std::vector<WeightView> weights,
                                                  const PlacementOptions& options) override;
};

}  // namespace kiln
