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
#include "backends/cuda/kernels/fused.cuh"
#include "backends/cuda/kernels/sampling.cuh"
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

// Op chains the session runs as one kernel (kernels/fused.cuh, gemv.cuh), found once per step.
// A fused kernel writes its outputs while it still reads its inputs, which the plan did not
// foresee (it placed them as separate ops), so a chain is fused only when the arena ranges of
// what it writes and what it reads are disjoint.
struct Fusion {
  enum class Kind { kNone, kGateUpGelu, kProjections, kResidualNorm, kHeadNormRope, kKvNormRopeAppend };
  Kind kind = Kind::kNone;
  size_t covered = 1;       // ops the kernel replaces, from this one on
  int32_t scalar_op = -1;   // kResidualNorm: the layer_scalar op, if fused
  int32_t next_norm_op = -1;  // kResidualNorm: the following rms_norm, if fused
};

std::vector<int> UseCounts(const Graph& graph) {
  std::vector<int> uses(graph.values().size(), 0);
  for (const Op& op : graph.ops()) {
    for (int32_t id : op.inputs) {
      if (id >= 0) ++uses[static_cast<size_t>(id)];
    }
  }
  for (int32_t id : graph.OutputIds()) ++uses[static_cast<size_t>(id)];
  return uses;
}

// The fusable chain starting at op `i`, from the graph alone (covered 1: none).
Fusion MatchFusion(const Graph& graph, const std::vector<int>& uses, size_t i) {
  const std::vector<Op>& ops = graph.ops();
  auto single_use = [&](int32_t id) { return uses[static_cast<size_t>(id)] == 1; };
  auto is = [&](size_t j, OpKind kind) { return j < ops.size() && ops[j].kind == kind; };
  auto weight_type = [&](int32_t id) { return graph.value(id).dtype; };
  auto row_norm = [&](size_t j) {  // an rms_norm over whole rows, with a weight
    return is(j, OpKind::kRmsNorm) && ops[j].inputs[1] >= 0 && ops[j].attrs.group_size == graph.value(ops[j].outputs[0]).shape.dims.back().value;
  };
  const Op& op = ops[i];
  if (is(i, OpKind::kLinear) && is(i + 1, OpKind::kLinear) && is(i + 2, OpKind::kGeluMul)) {
    const Op &up = ops[i + 1], &gelu = ops[i + 2];
    if (op.inputs[0] == up.inputs[0] && gelu.inputs[0] == op.outputs[0] && gelu.inputs[1] == up.outputs[0] &&
        single_use(op.outputs[0]) && single_use(up.outputs[0]) && weight_type(op.inputs[1]) == weight_type(up.inputs[1])) {
      return {Fusion::Kind::kGateUpGelu, 3};
    }
    return {};
  }
  if (is(i, OpKind::kLinear)) {  // q, k and v: linears of one input, none reading another's output
    size_t j = i + 1;
    while (j < i + cuda::kGemvMaxTargets && is(j, OpKind::kLinear) && ops[j].inputs[0] == op.inputs[0] &&
           weight_type(ops[j].inputs[1]) == weight_type(op.inputs[1])) {
      ++j;
    }
    if (j - i >= 2) return {Fusion::Kind::kProjections, j - i};
    return {};
  }
  if (is(i, OpKind::kRmsNorm) && op.inputs[1] >= 0 && is(i + 1, OpKind::kRope) && is(i + 2, OpKind::kRmsNorm) &&
      is(i + 3, OpKind::kKvAppend)) {
    const Op &rope = ops[i + 1], &v_norm = ops[i + 2], &append = ops[i + 3];
    if (rope.inputs[0] == op.outputs[0] && v_norm.inputs[1] < 0 && append.inputs[0] == rope.outputs[0] &&
        append.inputs[1] == v_norm.outputs[0] && single_use(op.outputs[0]) && single_use(rope.outputs[0]) &&
        single_use(v_norm.outputs[0]) && op.attrs.group_size == rope.attrs.head_dim && v_norm.attrs.group_size == rope.attrs.head_dim &&
        op.attrs.eps == v_norm.attrs.eps && append.attrs.head_dim == rope.attrs.head_dim) {
      return {Fusion::Kind::kKvNormRopeAppend, 4};
    }
  }
  if (is(i, OpKind::kRmsNorm) && op.inputs[1] >= 0 && is(i + 1, OpKind::kRope)) {
    const Op& rope = ops[i + 1];
    if (rope.inputs[0] == op.outputs[0] && single_use(op.outputs[0]) && op.attrs.group_size == rope.attrs.head_dim) {
      return {Fusion::Kind::kHeadNormRope, 2};
    }
  }
  if (row_norm(i) && is(i + 1, OpKind::kAdd) && single_use(op.outputs[0])) {
    const Op& add = ops[i + 1];
    const int32_t residual = add.inputs[0] == op.outputs[0] ? add.inputs[1] : add.inputs[1] == op.outputs[0] ? add.inputs[0] : -1;
    if (residual < 0 || residual == op.outputs[0]) return {};
    const DType type = weight_type(op.inputs[1]);
    Fusion fusion{Fusion::Kind::kResidualNorm, 2};
    int32_t x = add.outputs[0];
    size_t j = i + 2;
    if (is(j, OpKind::kScaleByWeight) && ops[j].inputs[0] == x && single_use(x) && weight_type(ops[j].inputs[1]) == type) {
      fusion.scalar_op = static_cast<int32_t>(j);
      x = ops[j].outputs[0];
      ++j;
    }
    if (row_norm(j) && ops[j].inputs[0] == x && weight_type(ops[j].inputs[1]) == type && ops[j].attrs.eps == op.attrs.eps) {
      fusion.next_norm_op = static_cast<int32_t>(j);
      ++j;
    }
    fusion.covered = j - i;
    return fusion;
  }
  return {};
}

class CudaSession : public BackendSession {
 public:
  CudaSession(const Program& program) : program_(program) {}
  ~CudaSession() override {
    if (profile_) PrintProfile();
    for (cudaEvent_t event : decoded_events_) cudaEventDestroy(event);
    if (decoded_host_) cudaFreeHost(decoded_host_);
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
    TRY(InitDecodeOnDevice());
    return Status::Ok();
  }

  // Device sampling state: the sampler's scratch and counter, and a ring of mapped host slots
  // with one event each, where finished steps leave their tokens.
  Status InitDecodeOnDevice() {
    const StepFunction* decode = program_.FindStep("decode");
    if (!decode) return Status::Ok();
    vocab_ = Resolve(*decode, decode->output_value, 1).columns;
    TRY_ASSIGN(sampling_, Allocate(cuda::SampleScratchBytes(vocab_) + 256, "sampling scratch"));
    void* host = nullptr;
    if (cudaError_t s = cudaHostAlloc(&host, sizeof(cuda::SampledSlot) * kMaxDecodeInFlight, cudaHostAllocMapped); s != cudaSuccess) {
      return CudaFailure(s, "cannot allocate pinned memory for sampled tokens");
    }
    decoded_host_ = static_cast<cuda::SampledSlot*>(host);
    void* device = nullptr;
    if (cudaError_t s = cudaHostGetDevicePointer(&device, host, 0); s != cudaSuccess) return CudaFailure(s, "cannot map pinned memory");
    decoded_device_ = static_cast<cuda::SampledSlot*>(device);
    for (int i = 0; i < kMaxDecodeInFlight; ++i) {
      cudaEvent_t event = nullptr;
      if (cudaError_t s = cudaEventCreateWithFlags(&event, cudaEventDisableTiming); s != cudaSuccess) return CudaFailure(s, "cannot create an event");
      decoded_events_.push_back(event);
    }
    return Status::Ok();
  }

  bool SupportsDecodeOnDevice() const override { return sampling_ != nullptr; }

  Status BeginDecode(const StepFunction& step, int32_t token, int64_t position, const DeviceSampling& sampling) override {
    if (!sampling_) return Error(ErrorCode::kUnsupported, "the program has no decode step");
    decode_step_ = &step;
    decode_graph_ = nullptr;
    if (use_graphs_ && !profile_) {
      TRY_ASSIGN(decode_graph_, GraphFor(step));
    }
    decode_logits_ = Resolve(step, step.output_value, 1).f32();
    sampling_params_.temperature = sampling.temperature;
    sampling_params_.top_k = static_cast<int32_t>(std::min<int64_t>(sampling.top_k, INT32_MAX));
    sampling_params_.top_p = sampling.top_p;
    sampling_params_.min_p = sampling.min_p;
    sampling_params_.seed = sampling.seed;
    // The draw of the token fed at position p uses counter p: a seed gives the same tokens
    // whatever the pipeline depth.
    staged_.token = token;
    staged_.position = static_cast<int32_t>(position);
    staged_.counter = static_cast<uint64_t>(position);
    cudaMemcpyAsync(inputs_.get(), &staged_.token, 4, cudaMemcpyHostToDevice, stream_);
    cudaMemcpyAsync(inputs_.get() + program_.max_tokens * 4, &staged_.position, 4, cudaMemcpyHostToDevice, stream_);
    cudaMemcpyAsync(Counter(), &staged_.counter, 8, cudaMemcpyHostToDevice, stream_);
    if (cudaError_t s = cudaStreamSynchronize(stream_); s != cudaSuccess) return CudaFailure(s, "cannot start decoding");
    oldest_ = 0;
    in_flight_ = 0;
    return Status::Ok();
  }

  Status EnqueueDecode() override {
    if (!decode_step_) return Error(ErrorCode::kInternal, "EnqueueDecode before BeginDecode");
    if (in_flight_ == kMaxDecodeInFlight) return Error(ErrorCode::kInternal, "too many decode steps in flight");
    const int slot = (oldest_ + in_flight_) % kMaxDecodeInFlight;
    int32_t* token = reinterpret_cast<int32_t*>(inputs_.get());
    int32_t* position = reinterpret_cast<int32_t*>(inputs_.get() + program_.max_tokens * 4);
    float* logprob = reinterpret_cast<float*>(Counter() + 1);
    cudaError_t s = cudaSuccess;
    if (decode_graph_) {
      s = cudaGraphLaunch(decode_graph_, stream_);
    } else {
      TRY(LaunchAll(*decode_step_, 1));
    }
    if (s == cudaSuccess) s = cuda::LaunchSample(decode_logits_, vocab_, sampling_params_, Counter(), token, logprob, position, SamplerScratch(), stream_);
    if (s == cudaSuccess) s = cuda::LaunchRecordSample(token, logprob, decoded_device_ + slot, stream_);
    if (s == cudaSuccess) s = cudaEventRecord(decoded_events_[static_cast<size_t>(slot)], stream_);
    if (s != cudaSuccess) return CudaFailure(s, "cannot enqueue a decode step");
    ++in_flight_;
    return Status::Ok();
  }

  Result<SampledToken> NextDecoded() override {
    if (in_flight_ == 0) return Error(ErrorCode::kInternal, "no decode step in flight");
    if (cudaError_t s = cudaEventSynchronize(decoded_events_[static_cast<size_t>(oldest_)]); s != cudaSuccess) return CudaFailure(s, "decode step failed");
    const cuda::SampledSlot slot = decoded_host_[oldest_];
    oldest_ = (oldest_ + 1) % kMaxDecodeInFlight;
    --in_flight_;
    return SampledToken{slot.id, slot.logprob};
  }

  void EndDecode() override {
    cudaStreamSynchronize(stream_);
    in_flight_ = 0;
    decode_graph_ = nullptr;
    decode_step_ = nullptr;
  }

  Status RunStep(const StepFunction& step, const StepIo& io) override;
  // The step captured as a CUDA graph (one-token steps), made on first use.
  Result<cudaGraphExec_t> GraphFor(const StepFunction& step);

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

  // The graph's fusable chains, kept where the plan placed what they write apart from what they
  // read (it does, for programs planned with this catalog; the check guards older plans).
  std::vector<Fusion> FindFusions(const StepFunction& step) const {
    const std::vector<int> uses = UseCounts(step.graph);
    const std::vector<Op>& ops = step.graph.ops();
    auto disjoint = [&](int32_t a, int32_t b) {
      const Placement& x = step.placements[static_cast<size_t>(a)];
      const Placement& y = step.placements[static_cast<size_t>(b)];
      if (x.where != Placement::Where::kArena || y.where != Placement::Where::kArena || a == b) return true;
      return x.offset_bytes + x.size_bytes <= y.offset_bytes || y.offset_bytes + y.size_bytes <= x.offset_bytes;
    };
    std::vector<Fusion> fusions(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      Fusion fusion = MatchFusion(step.graph, uses, i);
      if (fusion.covered < 2) continue;
      bool apart = true;
      for (size_t j = i; j < i + fusion.covered; ++j) {
        for (int32_t out : ops[j].outputs) {
          for (size_t k = i; k < i + fusion.covered; ++k) {
            for (int32_t in : ops[k].inputs) {
              if (in >= 0 && in != out && step.graph.value(in).kind == ValueKind::kIntermediate && !disjoint(in, out)) apart = false;
            }
          }
        }
      }
      if (apart) fusions[i] = fusion;
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
  // Sampling buffer layout: the draw counter (8 bytes), the logprob (4), then the sampler's scratch.
  uint64_t* Counter() const { return reinterpret_cast<uint64_t*>(sampling_.get()); }
  void* SamplerScratch() const { return sampling_.get() + 256; }
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
  // Decode on the device.
  int64_t vocab_ = 0;
  DeviceBuffer sampling_;
  cuda::SampledSlot* decoded_host_ = nullptr;    // pinned, mapped
  cuda::SampledSlot* decoded_device_ = nullptr;  // the same memory as the device sees it
  std::vector<cudaEvent_t> decoded_events_;
  const StepFunction* decode_step_ = nullptr;
  cudaGraphExec_t decode_graph_ = nullptr;  // null: launched op by op (graphs off)
  const float* decode_logits_ = nullptr;
  cuda::DeviceSampling sampling_params_;
  struct {
    int32_t token = 0, position = 0;
    uint64_t counter = 0;
  } staged_;
  int oldest_ = 0, in_flight_ = 0;
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
      if (!cuda::GemvSupports(TypeOf(w.dtype), x.rows, x.columns)) break;  // prefill: cuBLASLt, op by op
      const DeviceTensor w_up = Resolve(step, ops[op_index + 1].inputs[1], tokens), y = Resolve(step, ops[op_index + 2].outputs[0], tokens);
      return fused(cuda::LaunchGemvGeluMul(x.f32(), w.data, w_up.data, TypeOf(w.dtype), x.rows, w.rows, x.columns, y.f32(), stream_));
    }
    case Fusion::Kind::kProjections: {
      const DeviceTensor x = in(0), w = in(1);
      if (!cuda::GemvSupports(TypeOf(w.dtype), x.rows, x.columns)) break;  // prefill: cuBLASLt, op by op
      const void* weights[cuda::kGemvMaxTargets];
      float* outputs[cuda::kGemvMaxTargets];
      int64_t rows[cuda::kGemvMaxTargets];
      for (size_t j = 0; j < fusion.covered; ++j) {
        const DeviceTensor wj = Resolve(step, ops[op_index + j].inputs[1], tokens);
        weights[j] = wj.data;
        outputs[j] = Resolve(step, ops[op_index + j].outputs[0], tokens).f32();
        rows[j] = wj.rows;
      }
      return fused(cuda::LaunchGemvMulti(x.f32(), weights, outputs, rows, static_cast<int>(fusion.covered), TypeOf(w.dtype), x.rows,
                                         x.columns, stream_));
    }
    case Fusion::Kind::kResidualNorm: {
      const Op& add = ops[op_index + 1];
      const DeviceTensor branch = in(0), weight = in(1);
      const DeviceTensor residual = Resolve(step, add.inputs[0] == op.outputs[0] ? add.inputs[1] : add.inputs[0], tokens);
      const void* scalar = fusion.scalar_op >= 0 ? Resolve(step, ops[static_cast<size_t>(fusion.scalar_op)].inputs[1], tokens).data : nullptr;
      const Op* next = fusion.next_norm_op >= 0 ? &ops[static_cast<size_t>(fusion.next_norm_op)] : nullptr;
      const int32_t x_id = fusion.scalar_op >= 0 ? ops[static_cast<size_t>(fusion.scalar_op)].outputs[0] : add.outputs[0];
      const DeviceTensor x_out = Resolve(step, x_id, tokens);
      return fused(cuda::LaunchResidualNorm(branch.f32(), weight.data, residual.f32(), scalar, next ? Resolve(step, next->inputs[1], tokens).data : nullptr,
                                            TypeOf(weight.dtype), branch.rows, branch.columns, a.eps, x_out.f32(),
                                            next ? Resolve(step, next->outputs[0], tokens).f32() : nullptr, stream_));
    }
    case Fusion::Kind::kHeadNormRope: {
      const Op& rope = ops[op_index + 1];
      const DeviceTensor x = in(0), weight = in(1), y = Resolve(step, rope.outputs[0], tokens);
      const int64_t d = rope.attrs.head_dim;
      return fused(cuda::LaunchHeadNormRope(x.f32(), weight.data, TypeOf(weight.dtype), Resolve(step, rope.inputs[1], tokens).i32(), x.rows,
                                            x.columns / d, d, rope.attrs.rotary_dims, rope.attrs.rope_theta, a.eps, y.f32(), stream_));
    }
    case Fusion::Kind::kKvNormRopeAppend: {
      const Op &rope = ops[op_index + 1], &v_norm = ops[op_index + 2], &append = ops[op_index + 3];
      const DeviceCache& cache = caches_[static_cast<size_t>(append.attrs.cache_index)];
      const DeviceTensor k = in(0), weight = in(1), v = Resolve(step, v_norm.inputs[0], tokens);
      const int64_t d = rope.attrs.head_dim;
      return fused(cuda::LaunchKvNormRopeAppend(k.f32(), v.f32(), weight.data, TypeOf(weight.dtype), Resolve(step, append.inputs[2], tokens).i32(),
                                                k.rows, k.columns / d, d, rope.attrs.rotary_dims, rope.attrs.rope_theta, a.eps,
                                                cache.capacity, cache.ring, cache.k, cache.v, cache.type, stream_));
    }
  }
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
      TRY(Linear(step, op_index, in(0), in(1), out));
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
      if (cuda::MoeDecodeSupports(TypeOf(router.dtype), x.rows, x.columns, experts, width, a.top_k)) {
        return done(cuda::LaunchMoeDecode(x.f32(), in(1).f32(), router.data, in(3).data, in(4).data, in(5).data, down.data, TypeOf(router.dtype),
                                          x.rows, x.columns, experts, width, a.top_k, a.eps, Scratch(step, op_index), out.f32(), stream_));
      }
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
  // Appended piece by piece: GCC 12 reports a false -Wrestrict on chains of std::string +.
  const Op& op = step.graph.ops()[op_index];
  std::string key = step.name;
  key.append(tokens > 1 ? " T>1 " : " T=1 ").append(OpKindName(op.kind));
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

void CudaSession::PrintProfile() const {
  std::vector<std::pair<std::string, ProfileEntry>> entries(profile_entries_.begin(), profile_entries_.end());
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.second.milliseconds > b.second.milliseconds; });
  std::fprintf(stderr, "kiln cuda profile (kernel time by step and kernel):\n%-48s %10s %12s %10s\n", "", "calls", "total ms", "avg us");
  for (const auto& [key, entry] : entries) {
    std::fprintf(stderr, "%-48s %10lld %12.3f %10.2f\n", key.c_str(), static_cast<long long>(entry.calls), entry.milliseconds,
                 1e3 * entry.milliseconds / static_cast<double>(entry.calls));
  }
}

Result<cudaGraphExec_t> CudaSession::GraphFor(const StepFunction& step) {
  if (auto found = graphs_.find(&step); found != graphs_.end()) return found->second;
  if (!use_graphs_ || profile_) return Error(ErrorCode::kUnsupported, "CUDA graphs are off (KILN_CUDA_GRAPHS=0 or KILN_CUDA_PROFILE=1)");
  cudaGraph_t graph = nullptr;
  if (cudaError_t s = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal); s != cudaSuccess) {
    return CudaFailure(s, "cannot capture step '" + step.name + "'");
  }
  Status launched = LaunchAll(step, 1);
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  if (!launched.ok()) {
    if (graph) cudaGraphDestroy(graph);
    return launched.error();
  }
  if (ended != cudaSuccess) return CudaFailure(ended, "cannot capture step '" + step.name + "'");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (instantiated != cudaSuccess) return CudaFailure(instantiated, "cannot instantiate step '" + step.name + "'");
  graphs_.emplace(&step, exec);
  return exec;
}

Status CudaSession::RunStep(const StepFunction& step, const StepIo& io) {
  const int64_t tokens = static_cast<int64_t>(io.token_ids.size());
  cudaMemcpyAsync(inputs_.get(), io.token_ids.data(), static_cast<size_t>(tokens) * 4, cudaMemcpyHostToDevice, stream_);
  cudaMemcpyAsync(inputs_.get() + program_.max_tokens * 4, io.positions.data(), static_cast<size_t>(tokens) * 4, cudaMemcpyHostToDevice, stream_);
  // A one-token step is the same launches at every position (the position is read on the
  // device), so it is captured once as a CUDA graph and replayed: one launch per step.
  if (tokens == 1 && use_graphs_ && !profile_) {
    TRY_ASSIGN(cudaGraphExec_t graph, GraphFor(step));
    if (cudaError_t s = cudaGraphLaunch(graph, stream_); s != cudaSuccess) return CudaFailure(s, "step '" + step.name + "' failed");
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
      // The reference kernel's per-token buffers, or the decode path's chosen experts' activations.
      return std::max(max_tokens * (experts + 3 * width + hidden + experts) * 4, cuda::MoeDecodeScratchBytes(max_tokens, width, op.attrs.top_k));
    }
    case OpKind::kLinear: {
      // Rows beyond the GEMV path go to cuBLASLt with the activations rounded to the weight's type.
      const Value& x = graph.value(op.inputs[0]);
      const Value& w = graph.value(op.inputs[1]);
      const int64_t rows = x.shape.dims[0].Resolve(max_tokens, 0), k = w.shape.dims[1].value;
      if (w.dtype == DType::kF32 || cuda::GemvSupports(TypeOf(w.dtype), rows, k)) return 0;
      return rows * k * 2;
    }
    case OpKind::kAttention:
      return cuda::DecodeAttentionScratchBytes(max_tokens, op.attrs.num_heads, op.attrs.head_dim);
    default: return 0;
  }
}

std::vector<int32_t> CudaBackend::FusedGroups(const Graph& graph) const {
  const std::vector<int> uses = UseCounts(graph);
  std::vector<int32_t> groups(graph.ops().size(), 1);
  for (size_t i = 0; i < groups.size(); ++i) groups[i] = static_cast<int32_t>(MatchFusion(graph, uses, i).covered);
  return groups;
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
