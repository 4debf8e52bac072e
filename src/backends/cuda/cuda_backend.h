// The CUDA backend: the Program's step functions on an NVIDIA GPU.
//
// A Program is placed once (CudaPlacedModel, cuda_placed_model.h) and shared by every sequence:
// weights uploaded as stored (f32, bf16 or f16), the arena, the KV block pool and the step inputs
// are plain cudaMalloc allocations sized from the Program and the pool (the plan is verified
// against them first). Activations are f32 in the arena; accumulation is f32 everywhere.
//
// Which kernel runs an op depends on the step's shape, per launch (kernels/*.cuh):
//   linear     rows <= 4: a weight-streaming GEMV (gate/up/GELU-mul fused into one pass);
//              more: cuBLASLt, on tensor cores for bf16/f16 weights (activations rounded to the
//              weight type), in full f32 for f32 weights.
//   attention  one token per sequence (a decode batch) or <= 4 tokens: split over the context
//              (flash-decoding); prefill chunks: tensor cores (bf16 cache), else the reference.
// Every kernel that touches the cache reads and writes each token's own sequence's blocks
// through the step's block tables. The KV cache is bf16 for bf16/f16 checkpoints and f32 for f32
// ones (CacheDType). A decode batch is captured as a CUDA graph per (step, T) on its second run
// and replayed (one kept per decode batch size, CudaPlacedModel::GraphCapacity; KILN_CUDA_GRAPHS=0
// turns it off).
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
  std::vector<int32_t> FusedGroups(const Graph& graph) const override;
  DType CacheDType(const Graph& graph) const override;
  MemoryReport PlanMemory(const Program& program, const KvPoolSize& pool) const override;
  bool SupportsRandomWeights() const override { return true; }
  int64_t MemoryCapacity() const override;
  Result<std::unique_ptr<PlacedModel>> PlaceModel(const Program& program, std::vector<WeightView> weights,
                                                  const PlacementOptions& options) override;
};

}  // namespace kiln
