#include "backends/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cuda_device.h"
#include "backends/cuda/kernels/attention_decode.cuh"
#include "backends/cuda/kernels/attention_prefill.cuh"
#include "backends/cuda/kernels/gemv.cuh"
#include "backends/cuda/kernels/kernels.cuh"

namespace kiln {

namespace {

using cuda::WeightType;

constexpr int64_t kMaxHeadDim = 512;
constexpr int64_t kWeightAlignment = 256;

Error CudaFailure(cudaError_t status, const std::string& what) {
  return Error(status == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDeviceUnavailable,
               what + ": " + cudaGetErrorString(status));
}

WeightType TypeOf(DType dtype) {
  return dtype == DType::kBF16 ? WeightType::kBF16 : dtype == DType::kF16 ? WeightType::kF16 : WeightType::kF32;
}

int64_t AlignUp(int64_t bytes, int64_t alignment) { return (bytes + alignment - 1) / alignment * alignment; }

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

// Memory a session takes besides the plan's arena, cache and weights.
int64_t StepInputBytes(const Program& program) { return 2 * program.max_tokens * 4; }
int64_t OtherBytes(const Program& program) { return StepInputBytes(program) + cuda::CublasLtGemm::kWorkspaceBytes; }

struct DeviceTensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, columns = 0;
  float* f32() const { return static_cast<float*>(data); }
  const int32_t* i32() const { return static_cast<const int32_t*>(data); }
};

struct DeviceCache {
  void* k = nullptr;
  void* v = nullptr;
  WeightType type = WeightType::kF32;
  int64_t capacity = 0;
  bool ring = false;
};

// Ops the session runs as one kernel where the shapes allow: gate and up projections with the
// GELU-mul that consumes them (one pass over both weight matrices at decode).
struct Fusion {
  bool gate_up_gelu = false;  // this linear, the next linear and the gelu_mul after them
};

class CudaSession : public BackendSession {
 public:
  CudaSession(const Program& program) : program_(program) {}
  ~CudaSession() override {
    if (profile_) PrintProfile();
    for (cudaEvent_t event : events_) cudaEventDestroy(event);
    for (auto& [step, graph] : graphs_) cudaGraphExecDestroy(graph);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status Init(const std::vector<WeightView>& weights, const BackendSessionOptions& options) {
    TRY(VerifyProgram(program_, program_.arena_bytes));
    for (const StepFunction& step : program_.steps) {
      if (step.guard_bytes > 0) return Error(ErrorCode::kUnsupported, "guard mode runs on the CPU backend (--device cpu)");
      fusions_[&step] = FindFusions(step);
    }
    TRY_ASSIGN(cuda::CudaDeviceInfo device, cuda::ProbeCudaDevice(0));
    sm_count_ = device.multiprocessors;
    if (const char* graphs = std::getenv("KILN_CUDA_GRAPHS"); graphs && std::string(graphs) == "0") use_graphs_ = false;
    if (const char* profile = std::getenv("KILN_CUDA_PROFILE"); profile && std::string(profile) == "1") profile_ = true;
    if (cudaError_t s = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking); s != cudaSuccess) return CudaFailure(s, "cannot create a stream");
    TRY_ASSIGN(arena_, Allocate(program_.arena_bytes, "activation arena"));
    for (const CacheLayout& layout : program_.caches) {
      if (layout.dtype != DType::kF32 && layout.dtype != DType::kBF16) {
        return Error(ErrorCode::kUnsupported, std::string("the CUDA backend keeps the KV cache in f32 or bf16, the program asks for ") +
                                                  DTypeName(layout.dtype));
      }
      TRY_ASSIGN(DeviceBuffer k, Allocate(layout.bytes() / 2, "KV cache"));
      TRY_ASSIGN(DeviceBuffer v, Allocate(layout.bytes() / 2, "KV cache"));
      caches_.push_back({k.get(), v.get(), TypeOf(layout.dtype), layout.capacity_positions, layout.window > 0});
      cache_bytes_ += layout.bytes();
      buffers_.push_back(std::move(k));
      buffers_.push_back(std::move(v));
    }
    TRY(PlaceWeights(weights, options));
    TRY_ASSIGN(inputs_, Allocate(StepInputBytes(program_), "step inputs"));
    TRY_ASSIGN(gemm_, cuda::CublasLtGemm::Create());
    return Status::Ok();
  }

  Status RunStep(const StepFunction& step, const StepIo& io) override;

  MemoryReport memory() const override { return {program_.arena_bytes, cache_bytes_, weight_bytes_, OtherBytes(program_)}; }

 private:
  // Weights: one allocation, each tensor 256-byte aligned, copied once (or created on the device).
  Status PlaceWeights(const std::vector<WeightView>& weights, const BackendSessionOptions& options) {
    std::vector<int64_t> offsets;
    for (const WeightBinding& binding : program_.weights) {
      offsets.push_back(weight_bytes_);
      weight_bytes_ += AlignUp(binding.size_bytes(), kWeightAlignment);
    }
    TRY_ASSIGN(weights_, Allocate(weight_bytes_, "weights"));
    for (size_t i = 0; i < program_.weights.size(); ++i) {
      const WeightBinding& binding = program_.weights[i];
      uint8_t* target = weights_.get() + offsets[i];
      weight_pointers_.push_back(target);
      cudaError_t s = cudaSuccess;
      if (options.random_weights) {
        // Vectors (norm scales, layer scalars) near 1; matrices with unit-variance products.
        const int64_t columns = binding.shape.empty() ? 1 : binding.shape.back();
        const bool vector = binding.shape.size() <= 1;
        const int64_t count = binding.size_bytes() / static_cast<int64_t>(DTypeSize(binding.dtype));
        s = cuda::LaunchRandomFill(target, TypeOf(binding.dtype), count, options.random_seed + i, vector ? 1.0f : 0.0f,
                                   vector ? 0.1f : std::sqrt(3.0f / static_cast<float>(columns)), stream_);
      } else {
        s = cudaMemcpy(target, weights[i].data, static_cast<size_t>(weights[i].size_bytes), cudaMemcpyHostToDevice);
      }
      if (s != cudaSuccess) return CudaFailure(s, "cannot place weight '" + binding.tensor_name + "'");
    }
    if (cudaError_t s = cudaStreamSynchronize(stream_); s != cudaSuccess) return CudaFailure(s, "cannot place the weights");
    return Status::Ok();
  }

  std::vector<Fusion> FindFusions(const StepFunction& step) const {
    const std::vector<Op>& ops = step.graph.ops();
    std::vector<int> uses(step.graph.values().size(), 0);
    for (const Op& op : ops) {
      for (int32_t id : op.inputs) {
        if (id >= 0) ++uses[static_cast<size_t>(id)];
      }
    }
    for (int32_t id : step.graph.OutputIds()) ++uses[static_cast<size_t>(id)];
    std::vector<Fusion> fusions(ops.size());
    for (size_t i = 0; i + 2 < ops.size(); ++i) {
      const Op &gate = ops[i], &up = ops[i + 1], &gelu = ops[i + 2];
      if (gate.kind == OpKind::kLinear && up.kind == OpKind::kLinear && gelu.kind == OpKind::kGeluMul &&
          gate.inputs[0] == up.inputs[0] && gelu.inputs[0] == gate.outputs[0] && gelu.inputs[1] == up.outputs[0] &&
          uses[static_cast<size_t>(gate.outputs[0])] == 1 && uses[static_cast<size_t>(up.outputs[0])] == 1 &&
          step.graph.value(gate.inputs[1]).dtype == step.graph.value(up.inputs[1]).dtype) {
        fusions[i].gate_up_gelu = true;
      }
    }
    return fusions;
  }

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
  uint8_t* Scratch(const StepFunction& step, size_t op_index) const {
    return step.scratch_offsets[op_index] >= 0 ? arena_.get() + step.scratch_offsets[op_index] : nullptr;
  }

  Status Linear(const StepFunction& step, size_t op_index, const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& out);
  // Launches op `op_index` (and the ops fused into it); returns how many ops it covered.
  Result<size_t> Launch(const StepFunction& step, size_t op_index, int64_t tokens);
  Status LaunchAll(const StepFunction& step, int64_t tokens);

  // KILN_CUDA_PROFILE=1: every launch between two events (no graphs), times summed by step and
  // kernel and printed when the session ends. For finding where a step's time goes.
  std::string ProfileKey(const StepFunction& step, size_t op_index, int64_t tokens, size_t covered) const;
  void PrintProfile() const;

  const Program& program_;
  cudaStream_t stream_ = nullptr;
  int sm_count_ = 0;
  bool use_graphs_ = true;
  bool profile_ = false;
  std::vector<cudaEvent_t> events_;
  struct ProfileEntry {
    double milliseconds = 0;
    int64_t calls = 0;
  };
  std::map<std::string, ProfileEntry> profile_entries_;
  DeviceBuffer arena_, weights_, inputs_;
  std::vector<DeviceBuffer> buffers_;
  std::vector<DeviceCache> caches_;
  std::vector<uint8_t*> weight_pointers_;
  int64_t cache_bytes_ = 0, weight_bytes_ = 0;
  std::unique_ptr<cuda::CublasLtGemm> gemm_;
  std::map<const StepFunction*, std::vector<Fusion>> fusions_;
  std::map<const StepFunction*, cudaGraphExec_t> graphs_;  // one-token steps, captured on first use
};

Status CudaSession::Linear(const StepFunction& step, size_t op_index, const DeviceTensor& x, const DeviceTensor& w,
                           const DeviceTensor& out) {
  const WeightType type = TypeOf(w.dtype);
  const int64_t rows = x.rows, n = w.rows, k = x.columns;
  if (cuda::GemvSupports(type, rows, k)) {
    if (cudaError_t s = cuda::LaunchGemv(x.f32(), w.data, type, rows, n, k, out.f32(), stream_); s != cudaSuccess) {
      return CudaFailure(s, "linear '" + step.graph.ops()[op_index].name + "' failed");
    }
    return Status::Ok();
  }
  const void* operand = x.data;
  if (type != WeightType::kF32) {
    // Tensor cores take both operands in the weight's type: the activations are rounded once here.
    void* converted = Scratch(step, op_index);
    if (!converted) return Error(ErrorCode::kInternal, "linear '" + step.graph.ops()[op_index].name + "' has no conversion scratch");
    if (cudaError_t s = cuda::LaunchConvert(x.f32(), rows * k, type, converted, stream_); s != cudaSuccess) {
      return CudaFailure(s, "linear '" + step.graph.ops()[op_index].name + "' failed");
    }
    operand = converted;
  }
  return gemm_->Run(operand, w.data, type, rows, n, k, out.f32(), stream_);
}

Result<size_t> CudaSession::Launch(const StepFunction& step, size_t op_index, int64_t tokens) {
  const Op& op = step.graph.ops()[op_index];
  const OpAttrs& a = op.attrs;
  auto in = [&](size_t i) { return Resolve(step, op.inputs[i], tokens); };
  const DeviceTensor out = op.outputs.empty() ? DeviceTensor{} : Resolve(step, op.outputs[0], tokens);
  const int64_t count = out.rows * out.columns;
  auto done = [&](cudaError_t s) -> Result<size_t> {
    if (s != cudaSuccess) return CudaFailure(s, "kernel of op '" + op.name + "' failed");
    return size_t{1};
  };
  switch (op.kind) {
    case OpKind::kEmbed: {
      const DeviceTensor table = in(1);
      return done(cuda::LaunchEmbed(in(0).i32(), table.data, TypeOf(table.dtype), table.rows, out.rows, out.columns, a.scale, out.f32(), stream_));
    }
    case OpKind::kRmsNorm: {
      const DeviceTensor weight = in(1);
      return done(cuda::LaunchRmsNorm(in(0).f32(), weight.data, TypeOf(weight.dtype), count / a.group_size, a.group_size, a.eps, out.f32(), stream_));
    }
    case OpKind::kLinear: {
      const DeviceTensor x = in(0), w = in(1);
      if (fusions_.at(&step)[op_index].gate_up_gelu && cuda::GemvSupports(TypeOf(w.dtype), x.rows, x.columns)) {
        const Op& up = step.graph.ops()[op_index + 1];
        const Op& gelu = step.graph.ops()[op_index + 2];
        const DeviceTensor w_up = Resolve(step, up.inputs[1], tokens), y = Resolve(step, gelu.outputs[0], tokens);
        if (cudaError_t s = cuda::LaunchGemvGeluMul(x.f32(), w.data, w_up.data, TypeOf(w.dtype), x.rows, w.rows, x.columns, y.f32(), stream_);
            s != cudaSuccess) {
          return CudaFailure(s, "kernel of ops '" + op.name + "', '" + up.name + "', '" + gelu.name + "' failed");
        }
        return size_t{3};
      }
      TRY(Linear(step, op_index, x, w, out));
      return size_t{1};
    }
    case OpKind::kRope: {
      const DeviceTensor x = in(0);
      return done(cuda::LaunchRope(x.f32(), in(1).i32(), x.rows, x.columns / a.head_dim, a.head_dim, a.rotary_dims, a.rope_theta, out.f32(), stream_));
    }
    case OpKind::kKvAppend: {
      const DeviceCache& cache = caches_[static_cast<size_t>(a.cache_index)];
      const DeviceTensor k = in(0);
      return done(cuda::LaunchKvAppend(k.f32(), in(1).f32(), in(2).i32(), k.rows, k.columns, cache.capacity, cache.ring, cache.k, cache.v,
                                       cache.type, stream_));
    }
    case OpKind::kAttention: {
      const DeviceCache& cache = caches_[static_cast<size_t>(a.cache_index)];
      const DeviceTensor q = in(0);
      if (cuda::DecodeAttentionSupports(q.rows, a.num_heads, a.num_kv_heads, a.head_dim)) {
        return done(cuda::LaunchDecodeAttention(q.f32(), in(1).i32(), q.rows, a.num_heads, a.num_kv_heads, a.head_dim, a.window, a.scale,
                                                cache.k, cache.v, cache.type, cache.capacity, cache.ring,
                                                reinterpret_cast<float*>(Scratch(step, op_index)), out.f32(), sm_count_, stream_));
      }
      if (cache.type == WeightType::kBF16) {
        const cudaError_t s = cuda::LaunchPrefillAttention(q.f32(), in(1).i32(), q.rows, a.num_heads, a.num_kv_heads, a.head_dim, a.window,
                                                           a.scale, static_cast<const __nv_bfloat16*>(cache.k),
                                                           static_cast<const __nv_bfloat16*>(cache.v), cache.capacity, cache.ring, out.f32(), stream_);
        if (s != cudaErrorInvalidValue) return done(s);  // else a shape it does not take: the reference below
      }
      return done(cuda::LaunchAttention(q.f32(), in(1).i32(), q.rows, a.num_heads, a.num_kv_heads, a.head_dim, a.window, a.scale, cache.k,
                                        cache.v, cache.type, cache.capacity, cache.ring, out.f32(), stream_));
    }
    case OpKind::kAdd: return done(cuda::LaunchElementwise(cuda::ElementwiseOp::kAdd, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_));
    case OpKind::kMul: return done(cuda::LaunchElementwise(cuda::ElementwiseOp::kMul, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_));
    case OpKind::kScale: return done(cuda::LaunchElementwise(cuda::ElementwiseOp::kScale, in(0).f32(), nullptr, a.scale, count, out.f32(), stream_));
    case OpKind::kGeluMul: return done(cuda::LaunchElementwise(cuda::ElementwiseOp::kGeluMul, in(0).f32(), in(1).f32(), 0.0f, count, out.f32(), stream_));
    case OpKind::kSoftcap: return done(cuda::LaunchElementwise(cuda::ElementwiseOp::kSoftcap, in(0).f32(), nullptr, a.softcap, count, out.f32(), stream_));
    case OpKind::kScaleByWeight: {
      const DeviceTensor s = in(1);
      return done(cuda::LaunchScaleByWeight(in(0).f32(), s.data, TypeOf(s.dtype), count, out.f32(), stream_));
    }
    case OpKind::kSliceColumns: {
      const DeviceTensor x = in(0);
      return done(cuda::LaunchSliceColumns(x.f32(), x.rows, x.columns, a.column_offset, out.columns, out.f32(), stream_));
    }
    case OpKind::kLastRow: {
      const DeviceTensor x = in(0);
      return done(cudaMemcpyAsync(out.f32(), x.f32() + (x.rows - 1) * x.columns, static_cast<size_t>(x.columns) * 4, cudaMemcpyDeviceToDevice, stream_));
    }
    case OpKind::kMoe: {
      const DeviceTensor x = in(0), router = in(2), down = in(6);
      const int64_t experts = router.rows, width = down.columns / x.columns;
      return done(cuda::LaunchMoe(x.f32(), in(1).f32(), router.data, in(3).data, in(4).data, in(5).data, down.data, TypeOf(router.dtype), x.rows,
                                  x.columns, experts, width, a.top_k, a.eps, reinterpret_cast<float*>(Scratch(step, op_index)), out.f32(), stream_));
    }
    case OpKind::kCount: break;
  }
  return Error(ErrorCode::kInternal, "op '" + op.name + "' has no CUDA kernel");
}

Status CudaSession::LaunchAll(const StepFunction& step, int64_t tokens) {
  const size_t ops = step.graph.ops().size();
  if (!profile_) {
    for (size_t i = 0; i < ops;) {
      TRY_ASSIGN(size_t covered, Launch(step, i, tokens));
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
    TRY_ASSIGN(size_t covered, Launch(step, i, tokens));
    cudaEventRecord(events_[2 * launched.size() + 1], stream_);
    launched.emplace_back(i, covered);
    i += covered;
  }
  cudaStreamSynchronize(stream_);
  for (size_t j = 0; j < launched.size(); ++j) {
    float ms = 0;
    cudaEventElapsedTime(&ms, events_[2 * j], events_[2 * j + 1]);
    ProfileEntry& entry = profile_entries_[ProfileKey(step, launched[j].first, tokens, launched[j].second)];
    entry.milliseconds += ms;
    entry.calls += 1;
  }
  return Status::Ok();
}

std::string CudaSession::ProfileKey(const StepFunction& step, size_t op_index, int64_t tokens, size_t covered) const {
  const Op& op = step.graph.ops()[op_index];
  std::string key = step.name + (tokens > 1 ? " T>1 " : " T=1 ") + OpKindName(op.kind);
  if (op.kind == OpKind::kLinear) {
    const Value& w = step.graph.value(op.inputs[1]);
    key += " " + std::to_string(w.shape.dims[0].value) + "x" + std::to_string(w.shape.dims[1].value) + (covered == 3 ? "+gelu_mul" : "");
  } else if (op.kind == OpKind::kAttention) {
    key += " hd" + std::to_string(op.attrs.head_dim) + (op.attrs.window > 0 ? " sliding" : " full");
  }
  return key;
}

void CudaSession::PrintProfile() const {
  std::vector<std::pair<std::string, ProfileEntry>> entries(profile_entries_.begin(), profile_entries_.end());
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.second.milliseconds > b.second.milliseconds; });
  std::fprintf(stderr, "kiln cuda profile (kernel time by step and kernel):\n%-48s %10s %12s %10s\n", "", "calls", "total ms", "avg us");
  for (const auto& [key, entry] : entries) {
    std::fprintf(stderr, "%-48s %10lld %12.3f %10.2f\n", key.c_str(), static_cast<long long>(entry.calls), entry.milliseconds,
                 1e3 * entry.milliseconds / static_cast<double>(entry.calls));
  }
}

Status CudaSession::RunStep(const StepFunction& step, const StepIo& io) {
  const int64_t tokens = static_cast<int64_t>(io.token_ids.size());
  cudaMemcpyAsync(inputs_.get(), io.token_ids.data(), static_cast<size_t>(tokens) * 4, cudaMemcpyHostToDevice, stream_);
  cudaMemcpyAsync(inputs_.get() + program_.max_tokens * 4, io.positions.data(), static_cast<size_t>(tokens) * 4, cudaMemcpyHostToDevice, stream_);
  // A one-token step is the same launches at every position (the position is read on the
  // device), so it is captured once as a CUDA graph and replayed: one launch instead of ~20 a layer.
  if (tokens == 1 && use_graphs_ && !profile_) {
    auto found = graphs_.find(&step);
    if (found == graphs_.end()) {
      cudaGraph_t graph = nullptr;
      if (cudaError_t s = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal); s != cudaSuccess) return CudaFailure(s, "cannot capture step '" + step.name + "'");
      Status launched = LaunchAll(step, tokens);
      const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
      if (!launched.ok()) {
        if (graph) cudaGraphDestroy(graph);
        return launched;
      }
      if (ended != cudaSuccess) return CudaFailure(ended, "cannot capture step '" + step.name + "'");
      cudaGraphExec_t exec = nullptr;
      const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      if (instantiated != cudaSuccess) return CudaFailure(instantiated, "cannot instantiate step '" + step.name + "'");
      found = graphs_.emplace(&step, exec).first;
    }
    if (cudaError_t s = cudaGraphLaunch(found->second, stream_); s != cudaSuccess) return CudaFailure(s, "step '" + step.name + "' failed");
  } else {
    TRY(LaunchAll(step, tokens));
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
  switch (op.kind) {
    case OpKind::kMoe: {
      const Value& down = graph.value(op.inputs[6]);  // [E, H, M]
      const int64_t experts = down.shape.dims[0].value, hidden = down.shape.dims[1].value, width = down.shape.dims[2].value;
      return max_tokens * (experts + 3 * width + hidden + experts) * 4;
    }
    case OpKind::kLinear: {
      // Rows beyond the GEMV path go to cuBLASLt with the activations rounded to the weight's type.
      const Value& x = graph.value(op.inputs[0]);
      const Value& w = graph.value(op.inputs[1]);
      const int64_t rows = x.shape.dims[0].Resolve(max_tokens, 0);
      if (w.dtype == DType::kF32 || rows <= cuda::kGemvMaxRows) return 0;
      return rows * w.shape.dims[1].value * 2;
    }
    case OpKind::kAttention:
      return cuda::DecodeAttentionScratchBytes(max_tokens, op.attrs.num_heads, op.attrs.head_dim);
    default: return 0;
  }
}

DType CudaBackend::CacheDType(const Graph& graph) const {
  // bf16 and f16 checkpoints keep K and V in bf16: half the cache reads of a long-context
  // decode step. f32 checkpoints keep f32, so they match the CPU backend closely.
  for (const Op& op : graph.ops()) {
    if (op.kind == OpKind::kEmbed) return graph.value(op.inputs[1]).dtype == DType::kF32 ? DType::kF32 : DType::kBF16;
  }
  return DType::kF32;
}

MemoryReport CudaBackend::PlanMemory(const Program& program) const {
  int64_t weights = 0;
  for (const WeightBinding& binding : program.weights) weights += AlignUp(binding.size_bytes(), kWeightAlignment);
  return {program.arena_bytes, program.cache_bytes(), weights, OtherBytes(program)};
}

Result<std::unique_ptr<BackendSession>> CudaBackend::CreateSession(const Program& program, std::vector<WeightView> weights,
                                                                   const BackendSessionOptions& options) {
  TRY(cuda::ProbeCudaDevice(0));
  auto session = std::make_unique<CudaSession>(program);
  TRY(session->Init(weights, options));
  return std::unique_ptr<BackendSession>(std::move(session));
}

}  // namespace kiln
