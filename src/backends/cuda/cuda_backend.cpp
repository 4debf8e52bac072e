#include "backends/cuda/cuda_backend.h"

#include <algorithm>

#include "backends/cuda/block_linear.h"

#include "backends/cuda/cuda_device.h"
#include "backends/cuda/cuda_placed_model.h"
#include "backends/cuda/fusion.h"
#include "backends/cuda/kernels/attention_decode.cuh"
#include "backends/cuda/kernels/gemv.cuh"
#include "backends/cuda/kernels/kernels.cuh"

namespace kiln {

namespace {

using cuda::AlignUp;
using cuda::OtherBytes;
using cuda::TypeOf;
using cuda::kWeightAlignment;

constexpr int64_t kMaxHeadDim = 512;

}  // namespace

Status CudaBackend::CheckOp(const Graph& graph, const Op& op) const {
  auto refuse = [&](const std::string& why) {
    return Error(ErrorCode::kUnsupported, std::string("cuda backend cannot run op '") + op.name + "' (" + OpKindName(op.kind) + "): " + why);
  };
  if ((op.kind == OpKind::kAttention || op.kind == OpKind::kRope) && op.attrs.head_dim > kMaxHeadDim) {
    return refuse("head_dim above " + std::to_string(kMaxHeadDim));
  }
  if (op.kind == OpKind::kCentroidHead) {
    const Value& head = graph.value(op.inputs[1]);
    if (!cuda::CentroidHeadSupports(TypeOf(head.dtype), head.shape.dims[1].value, graph.value(op.inputs[2]).shape.dims.back().value,
                                    op.attrs.top_k)) {
      return refuse("more than " + std::to_string(cuda::kMaxHeadCentroids) + " centroids, a top_k above " + std::to_string(cuda::kMaxHeadTopK) +
                    " or a hidden size above " + std::to_string(cuda::kMaxHeadHidden));
    }
  }
  if (op.kind == OpKind::kMoe) {
    // Inputs: x, h, router, router scale, expert scale, gate_up, down. The router and its scales
    // share an element type; the experts share theirs: the router's, or a block format.
    const DType router = graph.value(op.inputs[2]).dtype, experts = graph.value(op.inputs[5]).dtype;
    if (graph.value(op.inputs[3]).dtype != router || graph.value(op.inputs[4]).dtype != router) {
      return refuse("the router and its scales differ in dtype");
    }
    if (graph.value(op.inputs[6]).dtype != experts) return refuse("the experts' gate_up and down differ in dtype");
    if (!IsBlockDType(experts) && experts != router) return refuse("the router and expert weights differ in dtype");
    const Value& down = graph.value(op.inputs[6]);  // [E, H, M]
    if (IsBlockDType(experts) && !IsBlockDType(router) &&
        !cuda::MoeDecodeSupports(TypeOf(router), TypeOf(experts), 1, down.shape.dims[1].value, down.shape.dims[0].value,
                                 down.shape.dims[2].value, op.attrs.top_k)) {
      return refuse(std::string(DTypeName(experts)) + " experts outside the routed kernels' bounds (top_k <= 32, the router in shared memory)");
    }
  }
  for (size_t i = 0; i < op.inputs.size(); ++i) {
    const int32_t id = op.inputs[i];
    if (id < 0 || graph.value(id).kind != ValueKind::kWeight) continue;
    const DType dtype = graph.value(id).dtype;
    if (dtype == DType::kI32 && !(op.kind == OpKind::kCentroidHead && i == 3)) return refuse("integer weights");
    // Block formats: the weight of a linear, an embedding table, and MoE experts (the kernels of
    // block_gemv.cuh, block_weights.cuh and block_linear.h).
    const bool block_input = (op.kind == OpKind::kLinear && i == 1) || (op.kind == OpKind::kEmbed && i == 1) ||
                             (op.kind == OpKind::kCentroidHead && i == 1) ||
                             (op.kind == OpKind::kMoe && (i == 5 || i == 6));
    if (IsBlockDType(dtype) && !block_input) {
      return refuse(std::string(DTypeName(dtype)) + " weights as input " + std::to_string(i) +
                    " (block formats are taken by linear weights, embedding tables, centroid heads and MoE experts)");
    }
  }
  return Status::Ok();
}

int64_t CudaBackend::ScratchBytes(const Graph& graph, const Op& op, int64_t max_tokens, int64_t) const {
  switch (op.kind) {
    case OpKind::kMoe: {
      const Value& down = graph.value(op.inputs[6]);  // [E, H, M]
      const int64_t experts = down.shape.dims[0].value, hidden = down.shape.dims[1].value, width = down.shape.dims[2].value;
      // The reference kernel's per-token buffers, or the decode path's chosen experts' activations.
      return std::max(max_tokens * (experts + 3 * width + hidden + experts) * 4, cuda::MoeDecodeScratchBytes(max_tokens, width, op.attrs.top_k));
    }
    case OpKind::kLinear: {
      // Rows beyond the GEMV path go to cuBLASLt with the activations rounded to the weight's type.
      const Value& x = graph.value(op.inputs[0]);
      const Value& w = graph.value(op.inputs[1]);
      // Rows are T, or R <= T (the LM head after GatherRows): max_tokens bounds both.
      const int64_t rows = x.shape.dims[0].Resolve(max_tokens, max_tokens), k = w.shape.dims[1].value;
      // Block formats beyond the GEMV: x in bf16 and a slab of the weight dequantized to bf16.
      if (cuda::IsBlockWeight(TypeOf(w.dtype))) return cuda::BlockLinearScratchBytes(TypeOf(w.dtype), rows, w.shape.dims[0].value, k);
      if (w.dtype == DType::kF32 || cuda::GemvSupports(TypeOf(w.dtype), rows, k)) return 0;
      return rows * k * 2;
    }
    case OpKind::kCentroidHead: {
      const int64_t rows = graph.value(op.inputs[0]).shape.dims[0].Resolve(max_tokens, max_tokens);
      const int64_t vocab = graph.value(op.inputs[1]).shape.dims[0].value, centroids = graph.value(op.inputs[2]).shape.dims.back().value;
      return cuda::CentroidHeadScratchBytes(rows, op.attrs.top_k, op.attrs.top_k * (vocab / std::max<int64_t>(centroids, 1)));
    }
    case OpKind::kAttention:
      // Split-K partial states (decode attention takes any step whose tokens are all apart).
      return cuda::DecodeAttentionScratchBytes(max_tokens, op.attrs.num_heads, op.attrs.head_dim);
    default: return 0;
  }
}

std::vector<int32_t> CudaBackend::FusedGroups(const Graph& graph) const {
  const std::vector<int> uses = cuda::UseCounts(graph);
  std::vector<int32_t> groups(graph.ops().size(), 1);
  for (size_t i = 0; i < groups.size(); ++i) groups[i] = static_cast<int32_t>(cuda::MatchFusion(graph, uses, i).covered);
  return groups;
}

DType CudaBackend::CacheDType(const Graph& graph) const {
  // bf16, f16 and block-format (quantized) checkpoints keep K and V in bf16: half the cache reads
  // of a long-context decode step. f32 checkpoints keep f32, so they match the CPU backend closely.
  for (const Op& op : graph.ops()) {
    if (op.kind == OpKind::kEmbed) return graph.value(op.inputs[1]).dtype == DType::kF32 ? DType::kF32 : DType::kBF16;
  }
  return DType::kF32;
}

MemoryReport CudaBackend::PlanMemory(const Program& program, const KvPoolSize& pool) const {
  int64_t weights = 0;
  for (const WeightBinding& binding : program.weights) weights += AlignUp(cuda::PlacedWeightBytes(binding), kWeightAlignment);
  // The pool: per layer, K and V of blocks(group) * block_size rows (what PlaceModel allocates).
  int64_t cache = 0;
  for (const CacheLayout& layout : program.caches) {
    const size_t group = static_cast<size_t>(layout.group);
    if (group < pool.blocks.size()) cache += 2 * pool.blocks[group] * program.kv_block_size * layout.row_bytes();
  }
  return {program.arena_bytes, cache, weights, OtherBytes(program)};
}

int64_t CudaBackend::MemoryCapacity() const {
  if (!cuda::ProbeCudaDevice(0)) return 0;  // no device: PlaceModel says why
  size_t free = 0, total = 0;
  return cudaMemGetInfo(&free, &total) == cudaSuccess ? static_cast<int64_t>(free) : 0;
}

Result<std::unique_ptr<PlacedModel>> CudaBackend::PlaceModel(const Program& program, std::vector<WeightView> weights,
                                                             const PlacementOptions& options) {
  PlacementOptions placement = options;
  if (placement.kv_pool.blocks.empty()) placement.kv_pool = KvPoolSize::ForSequences(program, program.max_sequences);
  if (placement.kv_pool.blocks.size() != program.kv_groups.size()) {
    return Error(ErrorCode::kInvalidArgument, "KV pool sized for " + std::to_string(placement.kv_pool.blocks.size()) +
                                                  " groups, the program has " + std::to_string(program.kv_groups.size()));
  }
  TRY(cuda::ProbeCudaDevice(0));
  auto placed = std::make_unique<cuda::CudaPlacedModel>(program);
  TRY(placed->Init(weights, placement));
  return std::unique_ptr<PlacedModel>(std::move(placed));
}

}  // namespace kiln
