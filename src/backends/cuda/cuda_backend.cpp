#include "backends/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include "backends/cuda/cuda_device.h"
#include "backends/cuda/kernels/kernels.cuh"

namespace kiln {

namespace {

using cuda::WeightType;

constexpr int64_t kMaxHeadDim = 512;

Error CudaFailure(cudaError_t status, const std::string& what) {
  return Error(status == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDeviceUnavailable,
               what + ": " + cudaGetErrorString(status));
}

WeightType TypeOf(DType dtype) {
  return dtype == DType::kBF16 ? WeightType::kBF16 : dtype == DType::kF16 ? WeightType::kF16 : WeightType::kF32;
}

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
using DeviceBuffer = std::unique_ptr<uint8_t, DeviceFree>;

Result<DeviceBuffer> Allocate(int64_t bytes, const std::string& what) {
  void* memory = nullptr;
  const cudaError_t status = cudaMalloc(&memory, static_cast<size_t>(std::max<int64_t>(bytes, 256)));
  if (status != cudaSuccess) return CudaFailure(status, "cannot allocate " + std::to_string(bytes) + " bytes of GPU memory for the " + what);
  return DeviceBuffer(static_cast<uint8_t*>(memory));
}

struct DeviceTensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, columns = 0;
  float* f32() const { return static_cast<float*>(data); }
  const int32_t* i32() const { return static_cast<const int32_t*>(data); }
};

struct DeviceCache {
  float* k = nullptr;
  float* v = nullptr;
  int64_t capacity = 0;
  bool ring = false;
};

class CudaSession : public BackendSession {
 public:
  CudaSession(const Program& program) : program_(program) {}
  ~CudaSession() override {
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status Init(const std::vector<WeightView>& weights) {
    TRY(VerifyProgram(program_, program_.arena_bytes));
    for (const StepFunction& step : program_.steps) {
      if (step.guard_bytes > 0) return Error(ErrorCode::kUnsupported, "guard mode runs on the CPU backend (--device cpu)");
    }
    if (cudaError_t s = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking); s != cudaSuccess) return CudaFailure(s, "cannot create a stream");
    TRY_ASSIGN(arena_, Allocate(program_.arena_bytes, "activation arena"));
    for (const CacheLayout& layout : program_.caches) {
      TRY_ASSIGN(DeviceBuffer k, Allocate(layout.bytes() / 2, "KV cache"));
      TRY_ASSIGN(DeviceBuffer v, Allocate(layout.bytes() / 2, "KV cache"));
      caches_.push_back({reinterpret_cast<float*>(k.get()), reinterpret_cast<float*>(v.get()), layout.capacity_positions, layout.window > 0});
      cache_bytes_ += layout.bytes();
      buffers_.push_back(std::move(k));
      buffers_.push_back(std::move(v));
    }
    // Weights: one allocation, each tensor 256-byte aligned, copied once.
    std::vector<int64_t> offsets;
    for (const WeightView& w : weights) {
      offsets.push_back(weight_bytes_);
      weight_bytes_ += (w.size_bytes + 255) / 256 * 256;
    }
    TRY_ASSIGN(weights_, Allocate(weight_bytes_, "weights"));
    for (size_t i = 0; i < weights.size(); ++i) {
      if (cudaError_t s = cudaMemcpy(weights_.get() + offsets[i], weights[i].data, static_cast<size_t>(weights[i].size_bytes), cudaMemcpyHostToDevice);
          s != cudaSuccess) {
        return CudaFailure(s, "cannot upload weight '" + program_.weights[i].tensor_name + "'");
      }
      weight_pointers_.push_back(weights_.get() + offsets[i]);
    }
    TRY_ASSIGN(inputs_, Allocate(2 * program_.max_tokens * 4, "step inputs"));
    return Status::Ok();
  }

  Status RunStep(const StepFunction& step, const StepIo& io) override;

  MemoryReport memory() const override { return {program_.arena_bytes, cache_bytes_, weight_bytes_}; }

 private:
  DeviceTensor Resolve(const StepFunction& step, int32_t id, int64_t tokens) const {
    DeviceTensor tensor;
    if (id < 0) return tensor;
    const Value& value = step.graph.value(id);
    const Placement& placement = step.placements[static_cast<size_t>(id)];
    tensor.dtype = value.dtype;
    tensor.rows = value.shape.Extent(0, tokens, program_.max_context);
    tensor.columns = 1;
    for (size_t axis = 1; axis < value.shape.dims.size(); ++axis) tensor.columns *= value.shape.Extent(axis, tokens, program_.max_context);
    switch (placement.where) {
      case Placement::Where::kInput: tensor.data = inputs_.get() + placement.index * program_.max_tokens * 4; break;
      case Placement::Where::kWeight: tensor.data = weight_pointers_[static_cast<size_t>(placement.index)]; break;
      case Placement::Where::kArena: tensor.data = arena_.get() + placement.offset_bytes; break;
      case Placement::Where::kNone: break;
    }
    return tensor;
  }
  cudaError_t Launch(const StepFunction& step, size_t op_index, int64_t tokens);

  const Program& program_;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer arena_, weights_, inputs_;
  std::vector<DeviceBuffer> buffers_;
  std::vector<DeviceCache> caches_;
  std::vector<uint8_t*> weight_pointers_;
  int64_t cache_bytes_ = 0, weight_bytes_ = 0;
};

cudaError_t CudaSession::Launch(const StepFunction& step, size_t op_index, int64_t tokens) {
  const Op& op = step.graph.ops()[op_index];
  const OpAttrs& a = op.attrs;
  auto in = [&](size_t i) { return Resolve(step, op.inputs[i], tokens); };
  const DeviceTensor out = op.outputs.empty() ? DeviceTensor{} : Resolve(step, op.outputs[0], tokens);
  const int64_t count = out.rows * out.columns;
  switch (op.kind) {
    case OpKind::kEmbed: {
      const DeviceTensor table = in(1);
      return cuda::LaunchEmbed(in(0).i32(), table.data, TypeOf(table.dtype), table.rows, out.rows, out.columns, a.scale, out.f32(), stream_);
    }
    case OpKind::kRmsNorm: {
      const DeviceTensor weight = in(1);
      return cuda::LaunchRmsNorm(in(0).f32(), weight.data, TypeOf(weight.dtype), count / a.group_size, a.group_size, a.eps, out.f32(), stream_);
    }
    case OpKind::kLinear: {
      const DeviceTensor x = in(0), w = in(1);
      return cuda::LaunchLinear(x.f32(), w.data, TypeOf(w.dtype), x.rows, w.rows, x.columns, out.f32(), stream_);
    }
    case OpKind::kRope: {
      const DeviceTensor x = in(0);
      return cuda::LaunchRope(x.f32(), in(1).i32(), x.rows, x.columns / a.head_dim, a.head_dim, a.rotary_dims, a.rope_theta, out.f32(), stream_);
    }
    case OpKind::kKvAppend: {
      const DeviceCache& cache = caches_[static_cast<size_t>(a.cache_index)];
      const DeviceTensor k = in(0);
      return cuda::LaunchKvAppend(k.f32(), in(1).f32(), in(2).i32(), k.rows, k.columns, cache.capacity, cache.ring, cache.k, cache.v, stream_);
    }
    case OpKind::kAttention: {
      const DeviceCache& cache = caches_[static_cast<size_t>(a.cache_index)];
      const DeviceTensor q = in(0);
      return cuda::LaunchAttention(q.f32(), in(1).i32(), q.rows, a.num_heads, a.num_kv_heads, a.head_dim, a.window, a.scale, cache.k,
                                   cache.v, cache.capacity, cache.ring, out.f32(), stream_);
    }
    case OpKind::kAdd: return cuda::LaunchElementwise(cuda::ElementwiseOp::kAdd, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_);
    case OpKind::kMul: return cuda::LaunchElementwise(cuda::ElementwiseOp::kMul, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_);
    case OpKind::kScale: return cuda::LaunchElementwise(cuda::ElementwiseOp::kScale, in(0).f32(), nullptr, a.scale, count, out.f32(), stream_);
    case OpKind::kGeluMul: return cuda::LaunchElementwise(cuda::ElementwiseOp::kGeluMul, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_);
    case OpKind::kSoftcap: return cuda::LaunchElementwise(cuda::ElementwiseOp::kSoftcap, in(0).f32(), nullptr, a.softcap, count, out.f32(), stream_);
    case OpKind::kScaleByWeight: {
      const DeviceTensor s = in(1);
      return cuda::LaunchScaleByWeight(in(0).f32(), s.data, TypeOf(s.dtype), count, out.f32(), stream_);
    }
    case OpKind::kSliceColumns: {
      const DeviceTensor x = in(0);
      return cuda::LaunchSliceColumns(x.f32(), x.rows, x.columns, a.column_offset, out.columns, out.f32(), stream_);
    }
    case OpKind::kLastRow: {
      const DeviceTensor x = in(0);
      return cudaMemcpyAsync(out.f32(), x.f32() + (x.rows - 1) * x.columns, static_cast<size_t>(x.columns) * 4, cudaMemcpyDeviceToDevice, stream_);
    }
    case OpKind::kMoe: {
      const DeviceTensor x = in(0), router = in(2), down = in(6);
      const int64_t experts = router.rows, width = down.columns / x.columns;
      const float* scratch = reinterpret_cast<const float*>(arena_.get() + step.scratch_offsets[op_index]);
      return cuda::LaunchMoe(x.f32(), in(1).f32(), router.data, in(3).data, in(4).data, in(5).data, down.data, TypeOf(router.dtype), x.rows,
                             x.columns, experts, width, a.top_k, a.eps, const_cast<float*>(scratch), out.f32(), stream_);
    }
    case OpKind::kCount: break;
  }
  return cudaErrorInvalidValue;
}

Status CudaSession::RunStep(const StepFunction& step, const StepIo& io) {
  const int64_t tokens = static_cast<int64_t>(io.token_ids.size());
  cudaMemcpyAsync(inputs_.get(), io.token_ids.data(), static_cast<size_t>(tokens) * 4, cudaMemcpyHostToDevice, stream_);
  cudaMemcpyAsync(inputs_.get() + program_.max_tokens * 4, io.positions.data(), static_cast<size_t>(tokens) * 4, cudaMemcpyHostToDevice, stream_);
  for (size_t i = 0; i < step.graph.ops().size(); ++i) {
    if (cudaError_t s = Launch(step, i, tokens); s != cudaSuccess) {
      return CudaFailure(s, "kernel of op '" + step.graph.ops()[i].name + "' failed");
    }
  }
  const DeviceTensor logits = Resolve(step, step.output_value, tokens);
  cudaMemcpyAsync(io.logits, logits.data, static_cast<size_t>(logits.rows * logits.columns) * 4, cudaMemcpyDeviceToHost, stream_);
  if (cudaError_t s = cudaStreamSynchronize(stream_); s != cudaSuccess) return CudaFailure(s, "step '" + step.name + "' failed");
  return Status::Ok();
}

}  // namespace

Status CudaBackend::CheckOp(const Graph& graph, const Op& op) const {
  auto refuse = [&](const std::string& why) {
    return Error(ErrorCode::kUnsupported, std::string("cuda backend cannot run op '") + op.name + "' (" + OpKindName(op.kind) + "): " + why);
  };
  if ((op.kind == OpKind::kAttention || op.kind == OpKind::kRope) && op.attrs.head_dim > kMaxHeadDim) {
    return refuse("head_dim above " + std::to_string(kMaxHeadDim));
  }
  if (op.kind == OpKind::kMoe) {
    const DType type = graph.value(op.inputs[2]).dtype;
    for (size_t i = 3; i < 7; ++i) {
      if (graph.value(op.inputs[i]).dtype != type) return refuse("the router and expert weights differ in dtype");
    }
  }
  for (int32_t id : op.inputs) {
    if (id >= 0 && graph.value(id).kind == ValueKind::kWeight && graph.value(id).dtype == DType::kI32) return refuse("integer weights");
  }
  return Status::Ok();
}

int64_t CudaBackend::ScratchBytes(const Graph& graph, const Op& op, int64_t max_tokens, int64_t) const {
  if (op.kind != OpKind::kMoe) return 0;
  const Value& down = graph.value(op.inputs[6]);  // [E, H, M]
  const int64_t experts = down.shape.dims[0].value, hidden = down.shape.dims[1].value, width = down.shape.dims[2].value;
  return max_tokens * (experts + 3 * width + hidden + experts) * 4;
}

Result<std::unique_ptr<BackendSession>> CudaBackend::CreateSession(const Program& program, std::vector<WeightView> weights,
                                                                   const BackendSessionOptions&) {
  TRY(cuda::ProbeCudaDevice(0));
  auto session = std::make_unique<CudaSession>(program);
  TRY(session->Init(weights));
  return std::unique_ptr<BackendSession>(std::move(session));
}

}  // namespace kiln
