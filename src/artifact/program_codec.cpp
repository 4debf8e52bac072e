#include "artifact/program_codec.h"

#include <map>
#include <set>

#include "artifact/byte_io.h"

namespace kiln {

namespace {

constexpr int64_t kMaxTokensBound = int64_t{1} << 20;
constexpr int64_t kMaxContextBound = int64_t{1} << 28;

void EncodeGraph(ByteWriter& w, const Graph& graph) {
  w.U64(graph.values().size());
  for (const Value& v : graph.values()) {
    w.String(v.name);
    w.U8(static_cast<uint8_t>(v.dtype));
    w.U8(static_cast<uint8_t>(v.kind));
    w.U64(v.shape.dims.size());
    for (const Dim& d : v.shape.dims) {
      w.I64(d.value);
      w.U8(static_cast<uint8_t>(d.symbol));
    }
  }
  w.U64(graph.ops().size());
  for (const Op& op : graph.ops()) {
    w.U8(static_cast<uint8_t>(op.kind));
    w.String(op.name);
    w.U64(op.inputs.size());
    for (int32_t id : op.inputs) w.I32(id);
    w.U64(op.outputs.size());
    for (int32_t id : op.outputs) w.I32(id);
    const OpAttrs& a = op.attrs;
    w.F32(a.scale);
    w.F32(a.eps);
    w.I64(a.group_size);
    w.I64(a.head_dim);
    w.I64(a.num_heads);
    w.I64(a.num_kv_heads);
    w.F32(a.rope_theta);
    w.I64(a.rotary_dims);
    w.F32(a.softcap);
    w.I64(a.column_offset);
    w.I32(a.cache_index);
    w.I64(a.window);
    w.I64(a.top_k);
  }
  w.U64(graph.caches().size());
  for (const CacheDecl& c : graph.caches()) {
    w.String(c.name);
    w.I64(c.num_kv_heads);
    w.I64(c.head_dim);
    w.I64(c.window);
  }
}

Graph DecodeGraph(ByteReader& r) {
  std::vector<Value> values(static_cast<size_t>(r.Count(8 + 2 + 8)));
  for (size_t i = 0; i < values.size() && r.ok(); ++i) {
    Value& v = values[i];
    v.id = static_cast<int32_t>(i);
    v.name = r.String();
    v.dtype = static_cast<DType>(r.U8());
    v.kind = static_cast<ValueKind>(r.U8());
    v.shape.dims.resize(static_cast<size_t>(std::min<uint64_t>(r.Count(9), 4)));
    for (Dim& d : v.shape.dims) {
      d.value = r.I64();
      d.symbol = static_cast<DimSymbol>(r.U8());
    }
  }
  std::vector<Op> ops(static_cast<size_t>(r.Count(1 + 8 + 8 + 8 + 80)));
  for (Op& op : ops) {
    if (!r.ok()) break;
    op.kind = static_cast<OpKind>(r.U8());
    op.name = r.String();
    op.inputs.resize(static_cast<size_t>(std::min<uint64_t>(r.Count(4), 16)));
    for (int32_t& id : op.inputs) id = r.I32();
    op.outputs.resize(static_cast<size_t>(std::min<uint64_t>(r.Count(4), 16)));
    for (int32_t& id : op.outputs) id = r.I32();
    OpAttrs& a = op.attrs;
    a.scale = r.F32();
    a.eps = r.F32();
    a.group_size = r.I64();
    a.head_dim = r.I64();
    a.num_heads = r.I64();
    a.num_kv_heads = r.I64();
    a.rope_theta = r.F32();
    a.rotary_dims = r.I64();
    a.softcap = r.F32();
    a.column_offset = r.I64();
    a.cache_index = r.I32();
    a.window = r.I64();
    a.top_k = r.I64();
  }
  std::vector<CacheDecl> caches(static_cast<size_t>(r.Count(8 + 24)));
  for (CacheDecl& c : caches) {
    if (!r.ok()) break;
    c.name = r.String();
    c.num_kv_heads = r.I64();
    c.head_dim = r.I64();
    c.window = r.I64();
  }
  return Graph::FromParts(std::move(values), std::move(ops), std::move(caches));
}

Error Malformed(const std::string& what) { return Error(ErrorCode::kMalformed, "program section: " + what); }

std::string KindOf(const std::string& target_name) { return target_name.substr(0, target_name.find(' ')); }

}  // namespace

std::string BackendKind(const KernelCatalog& catalog) { return KindOf(catalog.target_name()); }

std::vector<uint8_t> EncodeProgram(const Program& program, std::span<const uint64_t> weight_offsets) {
  ByteWriter w;
  w.String(program.target);
  w.I64(program.max_tokens);
  w.I64(program.max_sequences);
  w.I64(program.max_context);
  w.I64(program.kv_block_size);
  w.I64(program.alignment_bytes);
  w.U8(static_cast<uint8_t>(program.caches.empty() ? DType::kF32 : program.caches.front().dtype));
  w.U8(static_cast<uint8_t>(program.quant_recipe));
  w.U64(program.weights.size());
  for (size_t i = 0; i < program.weights.size(); ++i) {
    const WeightBinding& weight = program.weights[i];
    w.String(weight.name);
    w.String(weight.tensor_name);
    w.U8(static_cast<uint8_t>(weight.dtype));
    w.U8(static_cast<uint8_t>(weight.source_dtype));
    w.U64(weight.shape.size());
    for (int64_t d : weight.shape) w.I64(d);
    w.U64(weight_offsets[i]);
  }
  w.U64(program.steps.size());
  for (const StepFunction& step : program.steps) {
    w.String(step.name);
    w.I64(step.max_tokens);
    w.I64(step.max_rows);
    w.I64(step.guard_bytes);
    EncodeGraph(w, step.graph);
    w.I64(step.plan.arena_bytes);
    w.U64(step.plan.offsets_bytes.size());
    for (int64_t offset : step.plan.offsets_bytes) w.I64(offset);
  }
  return std::move(w.bytes());
}

Result<DecodedProgram> DecodeProgram(std::span<const uint8_t> bytes, const KernelCatalog& catalog) {
  ByteReader r(bytes);
  DecodedProgram decoded;
  Program& program = decoded.program;
  program.target = r.String();
  program.max_tokens = r.I64();
  program.max_sequences = r.I64();
  program.max_context = r.I64();
  program.kv_block_size = r.I64();
  program.alignment_bytes = r.I64();
  const DType cache_dtype = static_cast<DType>(r.U8());
  const uint8_t recipe = r.U8();
  if (!r.ok()) return Malformed(r.error());
  if (!IsKnownQuantRecipe(recipe)) return Malformed("quantization recipe " + std::to_string(recipe) + " is unknown");
  program.quant_recipe = static_cast<QuantRecipe>(recipe);
  if (program.max_tokens < 1 || program.max_tokens > kMaxTokensBound || program.max_context < program.max_tokens ||
      program.max_context > kMaxContextBound) {
    return Malformed("bounds Tmax " + std::to_string(program.max_tokens) + ", context " + std::to_string(program.max_context) + " are out of range");
  }
  if (program.max_sequences < 1 || program.max_sequences > program.max_tokens) {
    return Malformed("sequences per step " + std::to_string(program.max_sequences) + " out of range [1, Tmax]");
  }
  if (program.kv_block_size < 1 || program.kv_block_size > 4096) {
    return Malformed("KV block size " + std::to_string(program.kv_block_size) + " out of range [1, 4096]");
  }
  if (KindOf(program.target) != BackendKind(catalog)) {
    return Malformed("compiled for target '" + program.target + "', read for the " + BackendKind(catalog) + " backend");
  }
  if (program.alignment_bytes != catalog.alignment_bytes()) {
    return Malformed("alignment " + std::to_string(program.alignment_bytes) + " differs from the target's " + std::to_string(catalog.alignment_bytes()));
  }
  if (cache_dtype != DType::kF32 && cache_dtype != DType::kBF16) {
    return Malformed("cache dtype " + std::string(DTypeName(cache_dtype)) + " is not supported (expected f32 or bf16)");
  }

  std::map<std::string, size_t> weight_index;
  const uint64_t weight_count = r.Count(8 + 8 + 1 + 1 + 8 + 8);
  for (uint64_t i = 0; i < weight_count && r.ok(); ++i) {
    WeightBinding weight;
    weight.name = r.String();
    weight.tensor_name = r.String();
    const uint8_t dtype = r.U8();
    const uint8_t source_dtype = r.U8();
    if (r.ok() && !IsKnownDType(dtype)) return Malformed("weight '" + weight.name + "' has an invalid dtype");
    if (r.ok() && !IsKnownDType(source_dtype)) return Malformed("weight '" + weight.name + "' has an invalid source dtype");
    weight.dtype = static_cast<DType>(dtype);
    weight.source_dtype = static_cast<DType>(source_dtype);
    weight.shape.resize(static_cast<size_t>(std::min<uint64_t>(r.Count(8), 4)));
    for (int64_t& d : weight.shape) d = r.I64();
    decoded.weight_offsets.push_back(r.U64());
    if (!r.ok()) break;
    int64_t elements = 1;
    for (int64_t d : weight.shape) {
      if (d < 1 || __builtin_mul_overflow(elements, d, &elements) || elements > (int64_t{1} << 40)) return Malformed("weight '" + weight.name + "' has an invalid shape");
    }
    // Only a recipe changes a weight's dtype, and it packs only float sources (weight_packing.h).
    if (weight.source_dtype != weight.dtype &&
        (program.quant_recipe == QuantRecipe::kNone || IsBlockDType(weight.source_dtype))) {
      return Malformed("weight '" + weight.name + "' is stored as " + DTypeName(weight.dtype) + " from a " + DTypeName(weight.source_dtype) +
                       " source, which no recipe of this program packs");
    }
    if (IsBlockDType(weight.dtype) && (weight.shape.empty() || !DTypeRowsFit(weight.dtype, weight.shape.back()))) {
      return Malformed("weight '" + weight.name + "' has rows of " + std::to_string(weight.shape.empty() ? 0 : weight.shape.back()) +
                       " elements, not whole " + DTypeName(weight.dtype) + " blocks");
    }
    if (!weight_index.emplace(weight.name, program.weights.size()).second) return Malformed("weight '" + weight.name + "' appears twice");
    program.weights.push_back(std::move(weight));
  }
  const uint64_t step_count = r.Count(64);
  std::set<std::string> step_names;
  for (uint64_t s = 0; s < step_count && r.ok(); ++s) {
    StepFunction step;
    step.name = r.String();
    step.max_tokens = r.I64();
    step.max_rows = r.I64();
    const int64_t guard = r.I64();
    step.graph = DecodeGraph(r);
    MemoryPlan plan;
    plan.arena_bytes = r.I64();
    plan.offsets_bytes.resize(static_cast<size_t>(r.Count(8)));
    for (int64_t& offset : plan.offsets_bytes) offset = r.I64();
    if (!r.ok()) return Malformed(r.error());
    const std::string where = "step '" + step.name + "': ";
    if (!step_names.insert(step.name).second) return Malformed(where + "appears twice");
    if (step.max_tokens < 1 || step.max_tokens > program.max_tokens) return Malformed(where + "token bound out of range");
    if (step.max_rows < 1 || step.max_rows > step.max_tokens) return Malformed(where + "row bound out of range");
    if (guard < 0 || guard > 4096) return Malformed(where + "guard bytes out of range");
    Status valid = step.graph.Validate();
    if (!valid.ok()) return Malformed(where + valid.error().message());
    // Bind weights by name; their dtype and shape must be the graph's.
    TRY(PlaceInputsAndWeights(step, [&](Value& value) -> Result<int32_t> {
      auto it = weight_index.find(value.name);
      if (it == weight_index.end()) return Malformed(where + "graph weight '" + value.name + "' has no binding");
      const WeightBinding& weight = program.weights[it->second];
      std::vector<int64_t> dims;
      for (const Dim& d : value.shape.dims) dims.push_back(d.value);
      if (dims != weight.shape || value.dtype != weight.dtype) return Malformed(where + "weight '" + value.name + "' disagrees with its binding");
      return static_cast<int32_t>(it->second);
    }));
    for (const Op& op : step.graph.ops()) TRY(catalog.CheckOp(step.graph, op));
    const std::vector<int32_t> outputs = step.graph.OutputIds();
    step.output_value = outputs.back();
    step.hidden_value = outputs.size() == 2 ? outputs.front() : -1;
    TRY(BuildRequests(step, catalog, program.max_context, guard));
    if (step.guard_bytes != guard) return Malformed(where + "guard bytes are not aligned");
    if (plan.offsets_bytes.size() != step.requests.size()) {
      // The usual cause: a file compiled by a kiln whose backend planned other scratch (the CPU
      // int8 activation rows of block formats arrived on 2026-12-07).
      return Malformed(where + "plan has " + std::to_string(plan.offsets_bytes.size()) + " offsets for " +
                       std::to_string(step.requests.size()) + " tensors (planned by another kiln version? recompile it)");
    }
    uint64_t total = 0;
    for (const BufferRequest& request : step.requests) total += static_cast<uint64_t>(request.size_bytes);
    if (total > (uint64_t{1} << 50) || plan.arena_bytes < 0 || plan.arena_bytes > (int64_t{1} << 50)) return Malformed(where + "plan is implausibly large");
    Status applied = ApplyPlan(step, std::move(plan), program.alignment_bytes);
    if (!applied.ok()) return applied.error().WithContext("program section: " + where.substr(0, where.size() - 2));
    program.arena_bytes = std::max(program.arena_bytes, step.plan.arena_bytes);
    program.steps.push_back(std::move(step));
  }
  if (!r.ok()) return Malformed(r.error());
  if (r.remaining() != 0) return Malformed(std::to_string(r.remaining()) + " trailing bytes");
  for (const char* name : {"decode", "prefill", "score"}) {
    if (!program.FindStep(name)) return Malformed(std::string("no '") + name + "' step");
  }
  // Caches: recomputed from the first step's graph exactly as the compiler does.
  const Graph& graph = program.steps.front().graph;
  LayoutCaches(program, graph, cache_dtype);
  for (const StepFunction& step : program.steps) {
    if (step.graph.caches().size() != graph.caches().size()) return Malformed("steps disagree on the KV caches");
    for (size_t i = 0; i < graph.caches().size(); ++i) {
      const CacheDecl &a = step.graph.caches()[i], &b = graph.caches()[i];
      if (a.num_kv_heads != b.num_kv_heads || a.head_dim != b.head_dim || a.window != b.window) return Malformed("steps disagree on the KV caches");
    }
  }
  return decoded;
}

}  // namespace kiln
