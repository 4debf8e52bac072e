#include "backends/cpu/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "backends/cpu/kernel_context.h"

namespace kiln {

namespace cpu {

bool ReadsBlockRows(OpKind kind, size_t input) {
  switch (kind) {
    case OpKind::kEmbed: return input == 1;   // the table: one dequantized row per token
    case OpKind::kLinear: return input == 1;  // the weight: quant_dot.h
    case OpKind::kCentroidHead: return input == 1;  // the head: its kept rows, as a linear's
    case OpKind::kMoe: return input == 2 || input == 5 || input == 6;  // router, gate_up, down (MatVec)
    case OpKind::kRmsNorm:
    case OpKind::kRope:
    case OpKind::kKvAppend:
    case OpKind::kAttention:
    case OpKind::kAdd:
    case OpKind::kMul:
    case OpKind::kScaleByWeight:
    case OpKind::kScale:
    case OpKind::kGeluMul:
    case OpKind::kSoftcap:
    case OpKind::kSliceColumns:
    case OpKind::kGatherRows:
    case OpKind::kConcatColumns:
    case OpKind::kCount: return false;
  }
  return false;
}

KernelFn KernelFor(OpKind kind) {
  switch (kind) {
    case OpKind::kEmbed: return EmbedKernel;
    case OpKind::kRmsNorm: return RmsNormKernel;
    case OpKind::kLinear: return LinearKernel;
    case OpKind::kRope: return RopeKernel;
    case OpKind::kKvAppend: return KvAppendKernel;
    case OpKind::kAttention: return AttentionKernel;
    case OpKind::kAdd: return AddKernel;
    case OpKind::kMul: return MulKernel;
    case OpKind::kScaleByWeight: return ScaleByWeightKernel;
    case OpKind::kScale: return ScaleKernel;
    case OpKind::kGeluMul: return GeluMulKernel;
    case OpKind::kSoftcap: return SoftcapKernel;
    case OpKind::kSliceColumns: return SliceColumnsKernel;
    case OpKind::kGatherRows: return GatherRowsKernel;
    case OpKind::kMoe: return MoeKernel;
    case OpKind::kConcatColumns: return ConcatColumnsKernel;
    case OpKind::kCentroidHead: return CentroidHeadKernel;
    case OpKind::kCount: return nullptr;
  }
  return nullptr;
}

namespace {

constexpr uint8_t kCanary = 0xA5;

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, AlignedFree>;

Result<AlignedBuffer> AllocateAligned(int64_t bytes, const char* what) {
  const size_t rounded = static_cast<size_t>((std::max<int64_t>(bytes, 64) + 63) / 64 * 64);
  void* memory = std::aligned_alloc(64, rounded);
  if (!memory) {
    return Error(ErrorCode::kOutOfMemory, std::string("cannot allocate ") + std::to_string(bytes) + " bytes for the " + what);
  }
  return AlignedBuffer(static_cast<uint8_t*>(memory));
}

class CpuPlacedModel : public PlacedModel {
 public:
  CpuPlacedModel(const Program& program, std::vector<WeightView> weights, const PlacementOptions& options)
      : program_(program), weights_(std::move(weights)), kv_pool_(options.kv_pool), pool_(options.num_threads),
        dot_(&cpu::SelectDotKernels()) {}

  Status Init() {
    TRY(VerifyProgram(program_, program_.arena_bytes));  // validate at load, trust at run
    TRY_ASSIGN(arena_, AllocateAligned(program_.arena_bytes, "activation arena"));
    for (const CacheLayout& layout : program_.caches) {
      const int64_t rows = kv_pool_.blocks[static_cast<size_t>(layout.group)] * program_.kv_block_size;
      TRY_ASSIGN(AlignedBuffer k, AllocateAligned(rows * layout.row_bytes(), "KV block pool"));
      TRY_ASSIGN(AlignedBuffer v, AllocateAligned(rows * layout.row_bytes(), "KV block pool"));
      caches_.push_back({reinterpret_cast<float*>(k.get()), reinterpret_cast<float*>(v.get()), program_.kv_block_size,
                         program_.BlockTableOffset(layout.group), layout.capacity_positions, layout.num_kv_heads,
                         layout.head_dim, layout.window});
      cache_memory_.push_back(std::move(k));
      cache_memory_.push_back(std::move(v));
    }
    return Status::Ok();
  }

  Status RunStep(const StepFunction& step, const StepIo& io) override;

  MemoryReport memory() const override { return {program_.arena_bytes, kv_pool_.bytes(program_), 0, 0}; }

  bool SupportsCopyBlocks() const override { return true; }
  Status CopyBlocks(int32_t group, std::span<const int32_t> src, std::span<const int32_t> dst) override {
    const int64_t blocks = kv_pool_.blocks[static_cast<size_t>(group)];
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] < 0 || src[i] >= blocks || dst[i] < 0 || dst[i] >= blocks) {
        return Error(ErrorCode::kInvalidArgument, "KV block id out of range [0, " + std::to_string(blocks) + ")");
      }
    }
    for (size_t c = 0; c < caches_.size(); ++c) {
      if (program_.caches[c].group != group) continue;
      const size_t bytes = static_cast<size_t>(program_.kv_block_size * program_.caches[c].row_bytes());
      const size_t floats = bytes / sizeof(float);
      for (size_t i = 0; i < src.size(); ++i) {
        std::memcpy(caches_[c].k + static_cast<size_t>(dst[i]) * floats, caches_[c].k + static_cast<size_t>(src[i]) * floats, bytes);
        std::memcpy(caches_[c].v + static_cast<size_t>(dst[i]) * floats, caches_[c].v + static_cast<size_t>(src[i]) * floats, bytes);
      }
    }
    return Status::Ok();
  }

 private:
  cpu::TensorArg Resolve(const StepFunction& step, int32_t value_id, const StepIo& io) const;
  Status CheckGuards(const StepFunction& step, int32_t op_index) const;

  const Program& program_;
  std::vector<WeightView> weights_;
  KvPoolSize kv_pool_;
  ThreadPool pool_;
  const cpu::DotKernels* dot_;
  AlignedBuffer arena_;
  std::vector<AlignedBuffer> cache_memory_;
  std::vector<cpu::KvCache> caches_;
};

cpu::TensorArg CpuPlacedModel::Resolve(const StepFunction& step, int32_t value_id, const StepIo& io) const {
  const int64_t tokens = static_cast<int64_t>(io.token_ids.size()), rows = static_cast<int64_t>(io.logit_rows.size());
  cpu::TensorArg arg;
  if (value_id < 0) return arg;  // absent optional input
  const Value& value = step.graph.value(value_id);
  const Placement& placement = step.placements[static_cast<size_t>(value_id)];
  arg.dtype = value.dtype;
  arg.rows = value.shape.dims.empty() ? 1 : value.shape.Extent(0, tokens, rows);
  arg.columns = 1;
  for (size_t axis = 1; axis < value.shape.dims.size(); ++axis) arg.columns *= value.shape.Extent(axis, tokens, rows);
  switch (placement.where) {
    case Placement::Where::kInput: {
      if (placement.index == static_cast<int32_t>(StepInput::kHidden)) {
        arg.data = const_cast<float*>(io.hidden.data());
        break;
      }
      const std::span<const int32_t> inputs[] = {io.token_ids, io.positions, io.sequences, io.logit_rows, io.read_positions};
      arg.data = const_cast<int32_t*>(inputs[placement.index].data());
      break;
    }
    case Placement::Where::kWeight:
      arg.data = const_cast<void*>(weights_[static_cast<size_t>(placement.index)].data);
      break;
    case Placement::Where::kArena:
      arg.data = arena_.get() + placement.offset_bytes;
      break;
    case Placement::Where::kNone:
      break;
  }
  return arg;
}

Status CpuPlacedModel::CheckGuards(const StepFunction& step, int32_t op_index) const {
  const int64_t guard = step.guard_bytes;
  for (size_t r = 0; r < step.requests.size(); ++r) {
    const BufferRequest& request = step.requests[r];
    if (request.first_step > op_index || request.last_step < op_index) continue;
    const uint8_t* begin = arena_.get() + step.plan.offsets_bytes[r];
    const uint8_t* tail = begin + request.size_bytes - guard;
    for (int64_t i = 0; i < guard; ++i) {
      if (begin[i] != kCanary || tail[i] != kCanary) {
        const int32_t owner = step.request_owner[r];
        const std::string tensor = owner >= 0 ? step.graph.value(owner).name
                                              : step.graph.ops()[static_cast<size_t>(-owner - 1)].name + " scratch";
        return Error(ErrorCode::kInternal, "guard bytes of tensor '" + tensor + "' were overwritten by op '" +
                                               step.graph.ops()[static_cast<size_t>(op_index)].name + "' in step '" + step.name + "'");
      }
    }
  }
  return Status::Ok();
}

Status CpuPlacedModel::RunStep(const StepFunction& step, const StepIo& io) {
  const int64_t tokens = static_cast<int64_t>(io.token_ids.size());
  const auto& ops = step.graph.ops();
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (step.guard_bytes > 0) {  // canaries for the tensors this op creates
      for (size_t r = 0; r < step.requests.size(); ++r) {
        if (step.requests[r].first_step != static_cast<int32_t>(i)) continue;
        uint8_t* begin = arena_.get() + step.plan.offsets_bytes[r];
        std::memset(begin, kCanary, static_cast<size_t>(step.guard_bytes));
        std::memset(begin + step.requests[r].size_bytes - step.guard_bytes, kCanary, static_cast<size_t>(step.guard_bytes));
      }
    }
    cpu::KernelContext context;
    context.op = &op;
    for (size_t k = 0; k < op.inputs.size() && k < context.inputs.size(); ++k) {
      context.inputs[k] = Resolve(step, op.inputs[k], io);
    }
    if (!op.outputs.empty()) context.output = Resolve(step, op.outputs[0], io);
    const int64_t scratch = step.scratch_offsets[i];
    context.scratch = scratch >= 0 ? reinterpret_cast<float*>(arena_.get() + scratch) : nullptr;
    context.tokens = tokens;
    context.rows = static_cast<int64_t>(io.logit_rows.size());
    context.caches = caches_.data();
    context.block_tables = io.block_tables.data();
    context.table_stride = program_.block_table_stride();
    context.pool = &pool_;
    context.dot = dot_;
    cpu::KernelFor(op.kind)(context);
    if (step.guard_bytes > 0) TRY(CheckGuards(step, static_cast<int32_t>(i)));
  }
  // The logits output: rows x vocab floats.
  const cpu::TensorArg logits = Resolve(step, step.output_value, io);
  std::memcpy(io.logits, logits.data, static_cast<size_t>(logits.rows * logits.columns) * sizeof(float));
  if (io.hidden_out != nullptr && step.hidden_value >= 0) {
    const cpu::TensorArg hidden = Resolve(step, step.hidden_value, io);
    std::memcpy(io.hidden_out, hidden.data, static_cast<size_t>(hidden.rows * hidden.columns) * sizeof(float));
  }
  return Status::Ok();
}

}  // namespace
}  // namespace cpu

std::string CpuBackend::target_name() const { return std::string("cpu (") + cpu::SelectDotKernels().isa + ")"; }

int64_t CpuBackend::MemoryCapacity() const {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  int64_t capacity = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
  // A container's limit (cgroup v2; "max" when none) is what the kernel enforces.
  std::ifstream limit("/sys/fs/cgroup/memory.max");
  std::string text;
  if (limit >> text && !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const int64_t bytes = std::stoll(text);
    if (bytes > 0 && (capacity == 0 || bytes < capacity)) capacity = bytes;
  }
  return capacity;
}

Status CpuBackend::CheckOp(const Graph& graph, const Op& op) const {
  auto refuse = [&](const std::string& why) {
    return Error(ErrorCode::kUnsupported, std::string("cpu backend cannot run op '") + op.name + "' (" +
                                              OpKindName(op.kind) + "): " + why);
  };
  if (cpu::KernelFor(op.kind) == nullptr) return refuse("no kernel");
  if (op.inputs.size() > static_cast<size_t>(cpu::kMaxKernelInputs)) return refuse("too many inputs");
  for (size_t input = 0; input < op.inputs.size(); ++input) {
    const int32_t id = op.inputs[input];
    if (id < 0) continue;
    const Value& value = graph.value(id);
    if (value.kind == ValueKind::kWeight && value.dtype == DType::kI32 && !(op.kind == OpKind::kCentroidHead && input == 3)) {
      return refuse("integer weights");
    }
    if (value.kind == ValueKind::kWeight && IsBlockDType(value.dtype) && !cpu::ReadsBlockRows(op.kind, input)) {
      return refuse(std::string(DTypeName(value.dtype)) + " weights");
    }
    if (value.kind != ValueKind::kWeight && value.kind != ValueKind::kInput && value.dtype != DType::kF32) {
      return refuse("activations must be f32");
    }
  }
  if (op.kind == OpKind::kRope && op.attrs.rotary_dims > cpu::kMaxRopeFrequencies) {
    return refuse("more than " + std::to_string(cpu::kMaxRopeFrequencies) + " rotary frequencies");
  }
  return Status::Ok();
}

int64_t CpuBackend::ScratchBytes(const Graph& graph, const Op& op, int64_t max_tokens, int64_t) const {
  switch (op.kind) {
    case OpKind::kAttention:
      return max_tokens * op.attrs.num_heads * cpu::kAttentionBlock * 4;
    case OpKind::kMoe: {
      const Value& down = graph.value(op.inputs[6]);  // [E, H, M]
      const DType gate_up = graph.value(op.inputs[5]).dtype;
      const int64_t experts = down.shape.dims[0].value, hidden = down.shape.dims[1].value, width = down.shape.dims[2].value;
      return cpu::MoeFloatScratchBytes(experts, width, hidden) + cpu::Int8ScratchBytes(gate_up, 1, hidden) +
             cpu::Int8ScratchBytes(down.dtype, 1, width);
    }
    case OpKind::kLinear: {
      // Block-format weights: the activation rows rounded to int8 (quant_int8.h), planned for
      // every such weight whatever the CPU, so the plan does not depend on the machine.
      const Value& x = graph.value(op.inputs[0]);
      const Value& w = graph.value(op.inputs[1]);
      if (w.kind != ValueKind::kWeight || !IsBlockDType(w.dtype)) return 0;
      const int64_t k = x.shape.dims.back().value;
      const int64_t rows = x.shape.NumElements(max_tokens, max_tokens) / std::max<int64_t>(k, 1);
      return cpu::Int8ScratchBytes(w.dtype, rows, k);
    }
    case OpKind::kCentroidHead: {
      const Value& head = graph.value(op.inputs[1]);  // [V, H]
      const int64_t centroids = graph.value(op.inputs[2]).shape.dims.back().value;
      const int64_t vocab = head.shape.dims[0].value, kept = op.attrs.top_k * (vocab / std::max<int64_t>(centroids, 1));
      return cpu::CentroidHeadScratchBytes(head.dtype, head.shape.dims[1].value, kept);
    }
    default:
      return 0;
  }
}

Result<std::unique_ptr<PlacedModel>> CpuBackend::PlaceModel(const Program& program, std::vector<WeightView> weights,
                                                            const PlacementOptions& options) {
  // The kernels read and write f32 K/V; a program whose target chose another cache type (a CUDA
  // artifact, or a foreign file) is refused before any memory is allocated.
  for (const CacheLayout& cache : program.caches) {
    if (cache.dtype != DType::kF32) {
      return Error(ErrorCode::kUnsupported, "the program keeps its KV cache in " + std::string(DTypeName(cache.dtype)) +
                                                " (compiled for " + program.target + "); the CPU backend keeps it in f32: "
                                                "compile the model for the CPU (--target cpu)");
    }
  }
  if (options.kv_pool.blocks.size() != program.kv_groups.size()) {
    return Error(ErrorCode::kInvalidArgument, "KV pool sized for " + std::to_string(options.kv_pool.blocks.size()) +
                                                  " groups, the program has " + std::to_string(program.kv_groups.size()));
  }
  auto placed = std::make_unique<cpu::CpuPlacedModel>(program, std::move(weights), options);
  TRY(placed->Init());
  return std::unique_ptr<PlacedModel>(std::move(placed));
}

}  // namespace kiln
