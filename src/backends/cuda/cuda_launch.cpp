// The kernels of each op of a step on the CUDA backend (CudaPlacedModel::Launch), chosen per
// launch from the step's shape, and the optional per-kernel profile.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdio>

#include "backends/cuda/cuda_placed_model.h"
#include "backends/cuda/block_linear.h"
#include "backends/cuda/kernels/attention_decode.cuh"
#include "backends/cuda/kernels/attention_prefill.cuh"
#include "backends/cuda/kernels/fused.cuh"
#include "backends/cuda/kernels/gemv.cuh"

namespace kiln::cuda {

Status CudaPlacedModel::Linear(const StepFunction& step, size_t op_index, const DeviceTensor& x, const DeviceTensor& w,
                           const DeviceTensor& out) {
  const WeightType type = TypeOf(w.dtype);
  const int64_t rows = x.rows, n = w.rows, k = x.columns;
  if (IsBlockWeight(type)) {
    // The block GEMV, or bf16 slabs of the weight through cuBLASLt (block_linear.h).
    Status ran = RunBlockLinear(*gemm_, x.f32(), w.data, type, rows, n, k, out.f32(), Scratch(step, op_index), stream_);
    if (!ran.ok()) return ran.error().WithContext("linear '" + step.graph.ops()[op_index].name + "'");
    return Status::Ok();
  }
  if (GemvSupports(type, rows, k)) {
    if (cudaError_t s = LaunchGemv(x.f32(), w.data, type, rows, n, k, out.f32(), stream_); s != cudaSuccess) {
      return CudaFailure(s, "linear '" + step.graph.ops()[op_index].name + "' failed");
    }
    return Status::Ok();
  }
  const void* operand = x.data;
  if (type != WeightType::kF32) {
    // Tensor cores take both operands in the weight's type: the activations are rounded once here.
    void* converted = Scratch(step, op_index);
    if (!converted) return Error(ErrorCode::kInternal, "linear '" + step.graph.ops()[op_index].name + "' has no conversion scratch");
    if (cudaError_t s = LaunchConvert(x.f32(), rows * k, type, converted, stream_); s != cudaSuccess) {
      return CudaFailure(s, "linear '" + step.graph.ops()[op_index].name + "' failed");
    }
    operand = converted;
  }
  return gemm_->Run(operand, w.data, type, rows, n, k, out.f32(), stream_);
}

Result<size_t> CudaPlacedModel::Launch(const StepFunction& step, size_t op_index) {
  const Op& op = step.graph.ops()[op_index];
  const OpAttrs& a = op.attrs;
  auto in = [&](size_t i) { return Resolve(step, op.inputs[i]); };
  const DeviceTensor out = op.outputs.empty() ? DeviceTensor{} : Resolve(step, op.outputs[0]);
  const int64_t count = out.rows * out.columns;
  auto done = [&](cudaError_t s) -> Result<size_t> {
    if (s != cudaSuccess) return CudaFailure(s, "kernel of op '" + op.name + "' failed");
    return size_t{1};
  };
  const Fusion& fusion = fusions_.at(&step)[op_index];
  const std::vector<Op>& ops = step.graph.ops();
  auto fused = [&](cudaError_t s) -> Result<size_t> {
    if (s != cudaSuccess) return CudaFailure(s, "fused kernel of ops '" + op.name + "' .. '" + ops[op_index + fusion.covered - 1].name + "' failed");
    return fusion.covered;
  };
  switch (fusion.kind) {
    case Fusion::Kind::kNone: break;
    case Fusion::Kind::kGateUpGelu: {
      const DeviceTensor x = in(0), w = in(1);
      if (!GemvSupports(TypeOf(w.dtype), x.rows, x.columns)) break;  // prefill: cuBLASLt, op by op
      const DeviceTensor w_up = Resolve(step, ops[op_index + 1].inputs[1]), y = Resolve(step, ops[op_index + 2].outputs[0]);
      return fused(LaunchGemvGeluMul(x.f32(), w.data, w_up.data, TypeOf(w.dtype), x.rows, w.rows, x.columns, y.f32(), stream_));
    }
    case Fusion::Kind::kProjections: {
      const DeviceTensor x = in(0), w = in(1);
      if (!GemvSupports(TypeOf(w.dtype), x.rows, x.columns)) break;  // prefill: cuBLASLt, op by op
      const void* weights[kGemvMaxTargets];
      float* outputs[kGemvMaxTargets];
      int64_t rows[kGemvMaxTargets];
      for (size_t j = 0; j < fusion.covered; ++j) {
        const DeviceTensor wj = Resolve(step, ops[op_index + j].inputs[1]);
        weights[j] = wj.data;
        outputs[j] = Resolve(step, ops[op_index + j].outputs[0]).f32();
        rows[j] = wj.rows;
      }
      return fused(LaunchGemvMulti(x.f32(), weights, outputs, rows, static_cast<int>(fusion.covered), TypeOf(w.dtype), x.rows,
                                         x.columns, stream_));
    }
    case Fusion::Kind::kResidualNorm: {
      const Op& add = ops[op_index + 1];
      const DeviceTensor branch = in(0), weight = in(1);
      const DeviceTensor residual = Resolve(step, add.inputs[0] == op.outputs[0] ? add.inputs[1] : add.inputs[0]);
      const void* scalar = fusion.scalar_op >= 0 ? Resolve(step, ops[static_cast<size_t>(fusion.scalar_op)].inputs[1]).data : nullptr;
      const Op* next = fusion.next_norm_op >= 0 ? &ops[static_cast<size_t>(fusion.next_norm_op)] : nullptr;
      const int32_t x_id = fusion.scalar_op >= 0 ? ops[static_cast<size_t>(fusion.scalar_op)].outputs[0] : add.outputs[0];
      const DeviceTensor x_out = Resolve(step, x_id);
      return fused(LaunchResidualNorm(branch.f32(), weight.data, residual.f32(), scalar, next ? Resolve(step, next->inputs[1]).data : nullptr,
                                            TypeOf(weight.dtype), branch.rows, branch.columns, a.eps, x_out.f32(),
                                            next ? Resolve(step, next->outputs[0]).f32() : nullptr, stream_));
    }
    case Fusion::Kind::kHeadNormRope: {
      const Op& rope = ops[op_index + 1];
      const DeviceTensor x = in(0), weight = in(1), y = Resolve(step, rope.outputs[0]);
      const int64_t d = rope.attrs.head_dim;
      return fused(LaunchHeadNormRope(x.f32(), weight.data, TypeOf(weight.dtype), Resolve(step, rope.inputs[1]).i32(), x.rows,
                                            x.columns / d, d, rope.attrs.rotary_dims, rope.attrs.rope_theta, a.eps, y.f32(), stream_));
    }
    case Fusion::Kind::kKvNormRopeAppend: {
      const Op &rope = ops[op_index + 1], &v_norm = ops[op_index + 2], &append = ops[op_index + 3];
      const DeviceCache& cache = caches_[static_cast<size_t>(append.attrs.cache_index)];
      const DeviceTensor k = in(0), weight = in(1), v = Resolve(step, v_norm.inputs[0]);
      const int64_t d = rope.attrs.head_dim;
      return fused(LaunchKvNormRopeAppend(k.f32(), v.f32(), weight.data, TypeOf(weight.dtype), Resolve(step, append.inputs[2]).i32(),
                                          Resolve(step, append.inputs[3]).i32(), k.rows, k.columns / d, d, rope.attrs.rotary_dims,
                                          rope.attrs.rope_theta, a.eps, PagesOf(append.attrs.cache_index), cache.k, cache.v, cache.type,
                                          stream_));
    }
  }
  switch (op.kind) {
    case OpKind::kEmbed: {
      const DeviceTensor table = in(1);
      return done(LaunchEmbed(in(0).i32(), table.data, TypeOf(table.dtype), table.rows, out.rows, out.columns, a.scale, out.f32(), stream_));
    }
    case OpKind::kRmsNorm: {
      const DeviceTensor weight = in(1);
      return done(LaunchRmsNorm(in(0).f32(), weight.data, TypeOf(weight.dtype), count / a.group_size, a.group_size, a.eps, out.f32(), stream_));
    }
    case OpKind::kLinear: {
      TRY(Linear(step, op_index, in(0), in(1), out));
      return size_t{1};
    }
    case OpKind::kRope: {
      const DeviceTensor x = in(0);
      return done(LaunchRope(x.f32(), in(1).i32(), x.rows, x.columns / a.head_dim, a.head_dim, a.rotary_dims, a.rope_theta, out.f32(), stream_));
    }
    case OpKind::kKvAppend: {
      const DeviceCache& cache = caches_[static_cast<size_t>(a.cache_index)];
      const DeviceTensor k = in(0);
      return done(LaunchKvAppend(k.f32(), in(1).f32(), in(2).i32(), in(3).i32(), k.rows, k.columns, PagesOf(a.cache_index), cache.k,
                                 cache.v, cache.type, stream_));
    }
    case OpKind::kAttention: return LaunchAttention(step, op_index);
    case OpKind::kAdd: return done(LaunchElementwise(ElementwiseOp::kAdd, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_));
    case OpKind::kMul: return done(LaunchElementwise(ElementwiseOp::kMul, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_));
    case OpKind::kScale: return done(LaunchElementwise(ElementwiseOp::kScale, in(0).f32(), nullptr, a.scale, count, out.f32(), stream_));
    case OpKind::kGeluMul: return done(LaunchElementwise(ElementwiseOp::kGeluMul, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_));
    case OpKind::kSoftcap: return done(LaunchElementwise(ElementwiseOp::kSoftcap, in(0).f32(), nullptr, a.softcap, count, out.f32(), stream_));
    case OpKind::kScaleByWeight: {
      const DeviceTensor s = in(1);
      return done(LaunchScaleByWeight(in(0).f32(), s.data, TypeOf(s.dtype), count, out.f32(), stream_));
    }
    case OpKind::kSliceColumns: {
      const DeviceTensor x = in(0);
      return done(LaunchSliceColumns(x.f32(), x.rows, x.columns, a.column_offset, out.columns, out.f32(), stream_));
    }
    case OpKind::kConcatColumns: {
      const DeviceTensor x = in(0), y = in(1);
      return done(LaunchConcatColumns(x.f32(), y.f32(), out.rows, x.columns, y.columns, out.f32(), stream_));
    }
    case OpKind::kCentroidHead: {
      const DeviceTensor x = in(0), head = in(1), scores = in(2);
      return done(LaunchCentroidHead(x.f32(), head.data, TypeOf(head.dtype), out.columns, x.columns, scores.f32(), in(3).i32(), x.rows,
                                     scores.columns, a.top_k, Scratch(step, op_index), out.f32(), stream_));
    }
    case OpKind::kGatherRows: {
      const DeviceTensor x = in(0);
      return done(LaunchGatherRows(x.f32(), in(1).i32(), out.rows, x.columns, out.f32(), stream_));
    }
    case OpKind::kMoe: {
      const DeviceTensor x = in(0), router = in(2), down = in(6);
      const int64_t experts = router.rows, width = down.columns / x.columns;
      const WeightType router_type = TypeOf(router.dtype), expert_type = TypeOf(down.dtype);
      // Block-format experts always take this path (any token count, a few tokens at a time).
      if (MoeDecodeSupports(router_type, expert_type, x.rows, x.columns, experts, width, a.top_k)) {
        return done(LaunchMoeDecode(x.f32(), in(1).f32(), router.data, in(3).data, in(4).data, in(5).data, down.data, router_type,
                                    expert_type, x.rows, x.columns, experts, width, a.top_k, a.eps, Scratch(step, op_index), out.f32(),
                                    stream_));
      }
      return done(LaunchMoe(x.f32(), in(1).f32(), router.data, in(3).data, in(4).data, in(5).data, down.data, TypeOf(router.dtype), x.rows,
                                  x.columns, experts, width, a.top_k, a.eps, reinterpret_cast<float*>(Scratch(step, op_index)), out.f32(), stream_));
    }
    case OpKind::kCount: break;
  }
  return Error(ErrorCode::kInternal, "op '" + op.name + "' has no CUDA kernel");
}

// Split-K decode attention where every token is its own sequence (a decode batch: the step
// reads each sequence's keys once whatever it does) or the step is small (a verify step of up to
// kDecodeAttentionMaxRunTokens); otherwise the tensor-core
// prefill kernel over the step's runs (bf16 cache), else the reference kernel.
Result<size_t> CudaPlacedModel::LaunchAttention(const StepFunction& step, size_t op_index) {
  const Op& op = step.graph.ops()[op_index];
  const OpAttrs& a = op.attrs;
  auto done = [&](cudaError_t s) -> Result<size_t> {
    if (s != cudaSuccess) return CudaFailure(s, "kernel of op '" + op.name + "' failed");
    return size_t{1};
  };
  const DeviceCache& cache = caches_[static_cast<size_t>(a.cache_index)];
  const KvPages pages = PagesOf(a.cache_index);
  const DeviceTensor q = Resolve(step, op.inputs[0]), out = Resolve(step, op.outputs[0]);
  const int32_t* positions = Resolve(step, op.inputs[1]).i32();
  const int32_t* sequences = Resolve(step, op.inputs[2]).i32();
  const bool decode_batch = shape_.num_runs == q.rows || q.rows <= kDecodeAttentionMaxRunTokens;
  if (decode_batch && DecodeAttentionSupports(q.rows, step.max_tokens, a.num_heads, a.num_kv_heads, a.head_dim)) {
    return done(LaunchDecodeAttention(q.f32(), positions, sequences, q.rows, step.max_tokens, a.num_heads, a.num_kv_heads, a.head_dim,
                                      a.window, a.scale, cache.k, cache.v, cache.type, pages,
                                      reinterpret_cast<float*>(Scratch(step, op_index)), out.f32(), sm_count_, stream_));
  }
  if (cache.type == WeightType::kBF16) {
    const cudaError_t s = LaunchPrefillAttention(q.f32(), positions, sequences, Input(shape_.layout.runs), shape_.num_runs, q.rows,
                                                 a.num_heads, a.num_kv_heads, a.head_dim, a.window, a.scale,
                                                 static_cast<const __nv_bfloat16*>(cache.k), static_cast<const __nv_bfloat16*>(cache.v),
                                                 pages, out.f32(), stream_);
    if (s != cudaErrorInvalidValue) return done(s);  // else a shape it does not take: the reference below
  }
  return done(cuda::LaunchAttention(q.f32(), positions, sequences, q.rows, a.num_heads, a.num_kv_heads, a.head_dim, a.window, a.scale,
                                    cache.k, cache.v, cache.type, pages, out.f32(), stream_));
}

Status CudaPlacedModel::LaunchAll(const StepFunction& step) {
  const size_t ops = step.graph.ops().size();
  if (!profile_) {
    for (size_t i = 0; i < ops;) {
      TRY_ASSIGN(size_t covered, Launch(step, i));
      i += covered;
    }
    return Status::Ok();
  }
  while (events_.size() < 2 * ops) {
    cudaEvent_t event = nullptr;
    cudaEventCreate(&event);
    events_.push_back(event);
  }
  std::vector<std::pair<size_t, size_t>> launched;  // (op index, ops covered)
  for (size_t i = 0; i < ops;) {
    cudaEventRecord(events_[2 * launched.size()], stream_);
    TRY_ASSIGN(size_t covered, Launch(step, i));
    cudaEventRecord(events_[2 * launched.size() + 1], stream_);
    launched.emplace_back(i, covered);
    i += covered;
  }
  cudaStreamSynchronize(stream_);
  for (size_t j = 0; j < launched.size(); ++j) {
    float ms = 0;
    cudaEventElapsedTime(&ms, events_[2 * j], events_[2 * j + 1]);
    ProfileEntry& entry = profile_entries_[ProfileKey(step, launched[j].first, launched[j].second)];
    entry.milliseconds += ms;
    entry.calls += 1;
  }
  return Status::Ok();
}

std::string CudaPlacedModel::ProfileKey(const StepFunction& step, size_t op_index, size_t covered) const {
  // Appended piece by piece: GCC 12 reports a false -Wrestrict on chains of std::string +.
  const Op& op = step.graph.ops()[op_index];
  std::string key = step.name;
  const int64_t tokens = shape_.tokens;
  key.append(tokens > 4 ? " T>4 " : tokens > 1 ? " T=2-4 " : " T=1 ").append(OpKindName(op.kind));
  if (op.kind == OpKind::kLinear) {
    const Value& w = step.graph.value(op.inputs[1]);
    key.append(" ").append(std::to_string(w.shape.dims[0].value)).append("x").append(std::to_string(w.shape.dims[1].value));
    if (covered > 1) key.append(fusions_.at(&step)[op_index].kind == Fusion::Kind::kGateUpGelu ? "+up+gelu_mul" : " +projections");
  } else if (covered > 1) {
    key.append(" fused x").append(std::to_string(covered));
  } else if (op.kind == OpKind::kAttention) {
    key.append(" hd").append(std::to_string(op.attrs.head_dim)).append(op.attrs.window > 0 ? " sliding" : " full");
  }
  return key;
}

void CudaPlacedModel::PrintProfile() const {
  std::vector<std::pair<std::string, ProfileEntry>> entries(profile_entries_.begin(), profile_entries_.end());
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.second.milliseconds > b.second.milliseconds; });
  std::fprintf(stderr, "kiln cuda profile (kernel time by step and kernel):\n%-48s %10s %12s %10s\n", "", "calls", "total ms", "avg us");
  for (const auto& [key, entry] : entries) {
    std::fprintf(stderr, "%-48s %10lld %12.3f %10.2f\n", key.c_str(), static_cast<long long>(entry.calls), entry.milliseconds,
                 1e3 * entry.milliseconds / static_cast<double>(entry.calls));
  }
}

}  // namespace kiln::cuda
