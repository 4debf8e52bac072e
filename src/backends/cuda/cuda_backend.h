// The CUDA backend: the Program's step functions on an NVIDIA GPU.
//
// Weights are uploaded once at session creation (as stored: f32, bf16 or f16), the arena and the
// KV cache are plain cudaMalloc allocations sized from the Program (the plan is verified against
// them first), and a step launches one kernel per op on the session's stream, then copies the
// logits back. Activations and the KV cache are f32 with f32 accumulation, so results track the
// CPU backend closely; the kernels are the correctness baseline (kernels/kernels.cuh), not yet
// the fast paths (cuBLASLt, tensor-core attention, CUDA graphs, pipelined decode).
//
// Guard mode is a CPU-backend feature: a Program compiled with guards is refused here.
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace kiln {

class CudaBackend : public Backend {
 public:
  std::string target_name() const override { return "cuda"; }
  int64_t alignment_bytes() const override { return 256; }
  Status CheckOp(const Graph& graph, const Op& op) const override;
  int64_t ScratchBytes(const Graph& graph, const Op& op, int64_t max_tokens, int64_t max_context) const override;
  Result<std::unique_ptr<BackendSession>> CreateSession(const Program& program, std::vector<WeightView> weights,
                                                        const BackendSessionOptions& options) override;
};

}  // namespace kiln
