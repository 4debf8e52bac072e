#include "compiler/program.h"

#include <algorithm>
#include <map>

#include "compiler/quantize_pass.h"

namespace kiln {

int64_t WeightBinding::size_bytes() const {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  return DTypeBytes(dtype, count);  // whole blocks per row: checked when the weight is bound
}

const StepFunction* Program::FindStep(const std::string& name) const {
  for (const StepFunction& step : steps) if (step.name == name) return &step;
  return nullptr;
}

int64_t Program::weight_bytes() const {
  int64_t total = 0;
  for (const WeightBinding& w : weights) total += w.size_bytes();
  return total;
}

int64_t Program::cache_bytes() const {
  int64_t total = 0;
  for (const CacheLayout& c : caches) total += c.bytes();
  return total;
}

int64_t Program::block_table_stride() const {
  int64_t total = 0;
  for (const KvGroup& g : kv_groups) total += g.blocks_per_sequence;
  return total;
}

int64_t Program::BlockTableOffset(int32_t group) const {
  int64_t offset = 0;
  for (int32_t g = 0; g < group; ++g) offset += kv_groups[static_cast<size_t>(g)].blocks_per_sequence;
  return offset;
}

namespace {

int64_t AlignUp(int64_t value, int64_t alignment) { return (value + alignment - 1) / alignment * alignment; }

std::string DimsString(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// Binds one weight value, appending it to `weights` the first time its name is seen.
Result<int32_t> BindWeight(Value& value, const WeightLookup& lookup, std::vector<WeightBinding>& weights,
                           std::map<std::string, int32_t>& index_of) {
  if (auto it = index_of.find(value.name); it != index_of.end()) {
    value.dtype = weights[static_cast<size_t>(it->second)].dtype;
    return it->second;
  }
  std::vector<int64_t> expected;
  for (const Dim& d : value.shape.dims) expected.push_back(d.value);
  TRY_ASSIGN(WeightSpec spec, lookup(value));
  if (spec.shape != expected) {
    return Error(ErrorCode::kMalformed, "tensor '" + spec.tensor_name + "' has shape " + DimsString(spec.shape) +
                                            ", but the config implies " + DimsString(expected) +
                                            " (does config.json belong to these weights?)");
  }
  if (IsBlockDType(spec.dtype) && (spec.shape.empty() || !DTypeRowsFit(spec.dtype, spec.shape.back()))) {
    return Error(ErrorCode::kUnsupported, "tensor '" + spec.tensor_name + "' is " + DTypeName(spec.dtype) + ", but its rows of " +
                                              std::to_string(spec.shape.empty() ? 0 : spec.shape.back()) + " elements are not whole " +
                                              std::to_string(DTypeBlockElements(spec.dtype)) + "-element blocks");
  }
  if ((spec.dtype == DType::kI32) != (value.dtype == DType::kI32)) {
    return Error(ErrorCode::kMalformed, "tensor '" + spec.tensor_name + "' is " + DTypeName(spec.dtype) + ", but " +
                                            (value.dtype == DType::kI32 ? "it is a table of token ids (I32 or I64)"
                                                                        : "a weight is floating point or a block format"));
  }
  value.dtype = spec.dtype;
  weights.push_back({value.name, spec.tensor_name, spec.dtype, spec.dtype, spec.shape});
  const int32_t index = static_cast<int32_t>(weights.size() - 1);
  index_of[value.name] = index;
  return index;
}

}  // namespace

Status BuildRequests(StepFunction& step, const KernelCatalog& catalog, int64_t max_context, int64_t guard_bytes) {
  const Graph& graph = step.graph;
  const int64_t alignment = catalog.alignment_bytes();
  step.guard_bytes = guard_bytes > 0 ? AlignUp(guard_bytes, alignment) : 0;
  const int64_t guard = step.guard_bytes;
  const auto& ops = graph.ops();
  const int32_t num_ops = static_cast<int32_t>(ops.size());
  if (num_ops == 0) return Error(ErrorCode::kPlanInvalid, "step '" + step.name + "' has no ops");

  // Lifetimes: first op writing the value, last op reading it; outputs live to the end.
  std::vector<int32_t> first(graph.values().size(), -1), last(graph.values().size(), -1);
  for (int32_t i = 0; i < num_ops; ++i) {
    for (int32_t id : ops[static_cast<size_t>(i)].outputs) first[static_cast<size_t>(id)] = i;
    for (int32_t id : ops[static_cast<size_t>(i)].inputs) if (id >= 0) last[static_cast<size_t>(id)] = i;
  }
  // A fused group's values all live from its first op to its last.
  const std::vector<int32_t> groups = catalog.FusedGroups(graph);
  for (int32_t i = 0; i < num_ops;) {
    const int32_t group = groups.empty() ? 1 : std::clamp(groups[static_cast<size_t>(i)], 1, num_ops - i);
    if (group > 1) {
      const int32_t end = i + group - 1;
      for (int32_t j = i; j <= end; ++j) {
        for (int32_t id : ops[static_cast<size_t>(j)].outputs) first[static_cast<size_t>(id)] = std::min(first[static_cast<size_t>(id)], i);
        for (int32_t id : ops[static_cast<size_t>(j)].inputs) {
          if (id >= 0) last[static_cast<size_t>(id)] = std::max(last[static_cast<size_t>(id)], end);
        }
      }
    }
    i += group;
  }
  step.requests.clear();
  step.request_owner.clear();
  step.scratch_offsets.assign(ops.size(), -1);
  step.scratch_bytes.assign(ops.size(), 0);
  for (const Value& value : graph.values()) {
    if (value.kind != ValueKind::kIntermediate && value.kind != ValueKind::kOutput) continue;
    const size_t id = static_cast<size_t>(value.id);
    const int64_t bytes = value.shape.NumElements(step.max_tokens, step.max_rows) * static_cast<int64_t>(DTypeSize(value.dtype));
    const int32_t end = value.kind == ValueKind::kOutput ? num_ops - 1 : std::max(last[id], first[id]);
    step.requests.push_back({AlignUp(bytes, alignment) + 2 * guard, first[id], end});
    step.request_owner.push_back(value.id);
  }
  for (int32_t i = 0; i < num_ops; ++i) {
    const int64_t bytes = catalog.ScratchBytes(graph, ops[static_cast<size_t>(i)], step.max_tokens, max_context);
    step.scratch_bytes[static_cast<size_t>(i)] = bytes;
    if (bytes > 0) {
      step.requests.push_back({AlignUp(bytes, alignment) + 2 * guard, i, i});
      step.request_owner.push_back(-(i + 1));
    }
  }
  step.lower_bound_bytes = LowerBoundBytes(step.requests);
  return Status::Ok();
}

Status PlaceInputsAndWeights(StepFunction& step, const std::function<Result<int32_t>(Value& weight)>& bind) {
  step.placements.assign(step.graph.values().size(), Placement{});
  int32_t input_index = 0;
  for (Value& value : step.graph.mutable_values()) {
    Placement& placement = step.placements[static_cast<size_t>(value.id)];
    if (value.kind == ValueKind::kInput) {
      placement.where = Placement::Where::kInput;
      placement.index = input_index++;
    } else if (value.kind == ValueKind::kWeight) {
      TRY_ASSIGN(placement.index, bind(value));
      placement.where = Placement::Where::kWeight;
    }
  }
  return Status::Ok();
}

void LayoutCaches(Program& program, const Graph& graph, DType dtype) {
  program.caches.clear();
  program.kv_groups.clear();
  const int64_t block = program.kv_block_size;
  for (const CacheDecl& cache : graph.caches()) {
    CacheLayout layout{cache.name, cache.num_kv_heads, cache.head_dim, cache.window, 0, dtype, 0};
    // A chunk of Tmax tokens must see its whole window: W + Tmax - 1 positions suffice.
    layout.capacity_positions = cache.window > 0 ? std::min(cache.window + program.max_tokens - 1, program.max_context)
                                                 : program.max_context;
    size_t g = 0;
    while (g < program.kv_groups.size() && (program.kv_groups[g].window != cache.window ||
                                            program.kv_groups[g].capacity_positions != layout.capacity_positions)) {
      ++g;
    }
    if (g == program.kv_groups.size()) {
      program.kv_groups.push_back({cache.window, layout.capacity_positions, (layout.capacity_positions + block - 1) / block, 0});
    }
    layout.group = static_cast<int32_t>(g);
    program.kv_groups[g].block_bytes += 2 * block * layout.row_bytes();
    program.caches.push_back(layout);
  }
}

Status ApplyPlan(StepFunction& step, MemoryPlan plan, int64_t alignment) {
  TRY(VerifyPlan(step.requests, plan, alignment, plan.arena_bytes));
  step.plan = std::move(plan);
  const int64_t guard = step.guard_bytes;
  for (size_t r = 0; r < step.requests.size(); ++r) {
    const int32_t owner = step.request_owner[r];
    const int64_t offset = step.plan.offsets_bytes[r] + guard;
    if (owner >= 0) {
      Placement& placement = step.placements[static_cast<size_t>(owner)];
      placement.where = Placement::Where::kArena;
      placement.offset_bytes = offset;
      placement.size_bytes = step.requests[r].size_bytes - 2 * guard;
    } else {
      step.scratch_offsets[static_cast<size_t>(-owner - 1)] = offset;
    }
  }
  return Status::Ok();
}

Result<Program> CompileProgram(std::vector<StepSpec> steps, const KernelCatalog& catalog,
                               const WeightLookup& lookup, const CompileOptions& options) {
  if (options.max_tokens < 1 || options.max_context < 1) {
    return Error(ErrorCode::kInvalidArgument, "max tokens per step and context must be at least 1");
  }
  if (options.max_tokens > options.max_context) {
    return Error(ErrorCode::kInvalidArgument, "chunk size " + std::to_string(options.max_tokens) +
                                                  " exceeds the context " + std::to_string(options.max_context));
  }
  if (options.max_sequences < 1 || options.max_sequences > options.max_tokens) {
    return Error(ErrorCode::kInvalidArgument, "sequences per step must be in [1, chunk size " +
                                                  std::to_string(options.max_tokens) + "], got " + std::to_string(options.max_sequences));
  }
  if (options.kv_block_size < 1 || options.kv_block_size > 4096) {
    return Error(ErrorCode::kInvalidArgument, "KV block size must be in [1, 4096], got " + std::to_string(options.kv_block_size));
  }
  Program program;
  program.target = catalog.target_name();
  program.max_context = options.max_context;
  program.max_sequences = options.max_sequences;
  program.kv_block_size = options.kv_block_size;
  program.alignment_bytes = catalog.alignment_bytes();
  std::map<std::string, int32_t> weight_index;
  for (StepSpec& spec : steps) {
    program.max_tokens = std::max(program.max_tokens, spec.max_tokens);
  }
  // Bind every step's weights at their source dtypes first: the recipe looks at every op that
  // reads a weight, in every step, before the ops are checked and planned.
  std::vector<StepFunction> functions;
  for (StepSpec& spec : steps) {
    StepFunction step;
    step.name = spec.name;
    step.max_tokens = spec.max_tokens;
    step.max_rows = spec.max_rows;
    if (step.max_rows < 1 || step.max_rows > step.max_tokens) {
      return Error(ErrorCode::kInvalidArgument, "step '" + step.name + "' returns up to " + std::to_string(step.max_rows) +
                                                    " logit rows of at most " + std::to_string(step.max_tokens) + " tokens");
    }
    step.graph = std::move(spec.graph);
    TRY(PlaceInputsAndWeights(step, [&](Value& value) { return BindWeight(value, lookup, program.weights, weight_index); }));
    functions.push_back(std::move(step));
  }
  // The KV cache type follows the checkpoint's weights, whatever the recipe stores them in.
  const DType cache_dtype = options.cache_dtype.value_or(functions.empty() ? DType::kF32 : catalog.CacheDType(functions.front().graph));
  TRY(ApplyQuantRecipe(options.quant, catalog, program.weights, functions));
  program.quant_recipe = options.quant;
  for (StepFunction& step : functions) {
    for (const Op& op : step.graph.ops()) TRY(catalog.CheckOp(step.graph, op));
    const std::vector<int32_t> outputs = step.graph.OutputIds();
    if (outputs.empty() || outputs.size() > 2) {
      return Error(ErrorCode::kInternal, "step '" + step.name + "' has " + std::to_string(outputs.size()) + " outputs, expected 1 or 2");
    }
    step.output_value = outputs.back();
    step.hidden_value = outputs.size() == 2 ? outputs.front() : -1;
    TRY(BuildRequests(step, catalog, options.max_context, options.guard ? options.guard_bytes : 0));
    TRY(ApplyPlan(step, PlanMemory(step.requests, catalog.alignment_bytes(), options.planner), catalog.alignment_bytes()));
    program.arena_bytes = std::max(program.arena_bytes, step.plan.arena_bytes);
    if (program.steps.empty()) LayoutCaches(program, step.graph, cache_dtype);
    program.steps.push_back(std::move(step));
  }
  return program;
}

Status VerifyProgram(const Program& program, int64_t arena_bytes) {
  for (const StepFunction& step : program.steps) {
    if (step.requests.size() != step.request_owner.size()) {
      return Error(ErrorCode::kPlanInvalid, "step '" + step.name + "': plan bookkeeping is inconsistent");
    }
    Status status = VerifyPlan(step.requests, step.plan, program.alignment_bytes, arena_bytes);
    if (!status.ok()) return status.error().WithContext("step '" + step.name + "'");
  }
  return Status::Ok();
}

}  // namespace kiln
