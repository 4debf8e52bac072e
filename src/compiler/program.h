// Program: the compiled, immutable form of a model for one target.
//
// A Program holds everything a Session needs and nothing it must compute: the weights it reads
// (by checkpoint name, dtype and shape), the KV cache layout, and its step functions — each an
// op list with every tensor placed in one arena by a verified plan made at the step's bounds.
// JIT builds it in-process; an AOT artifact serializes the same structure.
//
//   Program program = TRY(CompileProgram(steps, catalog, lookup, options));
//   program.arena_bytes  // the arena a Session allocates, before allocating it
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "compiler/kernel_catalog.h"
#include "compiler/memory_planner.h"
#include "compiler/quant_recipe.h"
#include "graph/graph.h"

namespace kiln {

// Where a value lives while a step runs.
struct Placement {
  enum class Where : uint8_t { kNone = 0, kInput = 1, kWeight = 2, kArena = 3 };
  Where where = Where::kNone;
  int32_t index = -1;        // kInput: step input index; kWeight: index into Program::weights
  int64_t offset_bytes = 0;  // kArena: tensor start (after its guard bytes)
  int64_t size_bytes = 0;    // kArena: bytes at the step's bounds
};

struct StepFunction {
  std::string name;          // "decode", "prefill", "score"
  int64_t max_tokens = 0;    // T bound this step was planned at (tokens over all its sequences)
  int64_t max_rows = 0;      // R bound: rows of logits it returns
  Graph graph;               // weights bound (dtypes from the checkpoint)
  std::vector<Placement> placements;     // one per graph value
  int32_t output_value = -1;             // the logits value id
  int32_t hidden_value = -1;             // the hidden-state output's value id, or -1 (Graph::OutputIds)
  std::vector<int64_t> scratch_offsets;  // one per op; -1 when the op needs none
  std::vector<int64_t> scratch_bytes;    // one per op
  // The planner's input and output, kept so the plan can be verified again at load.
  std::vector<BufferRequest> requests;
  std::vector<int32_t> request_owner;    // value id, or -(op index + 1) for an op's scratch
  MemoryPlan plan;
  int64_t lower_bound_bytes = 0;
  int64_t guard_bytes = 0;               // canary bytes before and after each tensor (0 = off)
};

// One layer's KV cache. It lives in the backend's block pool: a block holds `block_size`
// consecutive slots of every layer of its group, and a sequence reaches its slots through its
// block table. A full layer's slot is the position; a sliding layer's slot is the position
// modulo capacity_positions (a ring per sequence).
struct CacheLayout {
  std::string name;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t window = 0;               // 0 = full attention
  int64_t capacity_positions = 0;   // per sequence: ring (window + Tmax - 1) or the context
  DType dtype = DType::kF32;
  int32_t group = 0;                // index into Program::kv_groups
  int64_t row_bytes() const { return num_kv_heads * head_dim * static_cast<int64_t>(DTypeSize(dtype)); }
  int64_t bytes() const { return 2 * capacity_positions * row_bytes(); }  // K and V of one sequence
};

// Layers whose sequences hold the same number of slots share block tables: the sliding layers
// (a ring of window + Tmax - 1 slots) and the full layers (the context).
struct KvGroup {
  int64_t window = 0;                 // 0 = full attention
  int64_t capacity_positions = 0;     // slots one sequence holds in each layer of the group
  int64_t blocks_per_sequence = 0;    // ceil(capacity / block_size): block table entries
  int64_t block_bytes = 0;            // K and V of block_size slots in every layer of the group
};

struct WeightBinding {
  std::string name;          // graph name ("layers.0.self_attn.q_proj.weight")
  std::string tensor_name;   // name in the source ("model.language_model.layers.0...")
  DType dtype = DType::kBF16;          // as the Program stores and the kernels read it
  DType source_dtype = DType::kBF16;   // as the source stores it; differs when a recipe packed it
  std::vector<int64_t> shape;
  int64_t size_bytes() const;
};

struct Program {
  std::string target;
  int64_t max_tokens = 0;    // Tmax: most tokens a step runs, over all its sequences
  int64_t max_sequences = 0; // Smax: most sequences a step runs (and tokens a decode step runs)
  int64_t max_context = 0;   // Cmax: positions one sequence may hold
  int64_t kv_block_size = 0; // slots per KV block
  int64_t alignment_bytes = 0;
  QuantRecipe quant_recipe = QuantRecipe::kNone;  // the recipe that chose the weights' dtypes
  std::vector<WeightBinding> weights;
  std::vector<CacheLayout> caches;
  std::vector<KvGroup> kv_groups;
  std::vector<StepFunction> steps;
  int64_t arena_bytes = 0;   // max over steps: steps run one at a time in one arena

  const StepFunction* FindStep(const std::string& name) const;
  // The MTP drafter's step ("draft"), when the program was compiled with an assistant, else null.
  const StepFunction* draft_step() const { return FindStep("draft"); }
  int64_t weight_bytes() const;
  int64_t cache_bytes() const;  // KV bytes one sequence holds at its largest
  // Block table entries of one sequence over all groups; group g's entries start at
  // BlockTableOffset(g).
  int64_t block_table_stride() const;
  int64_t BlockTableOffset(int32_t group) const;
};

// What a weight looks like in the source. The lookup resolves a graph weight name (and the
// shape the config implies) to the source tensor, or says why it cannot.
struct WeightSpec {
  std::string tensor_name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
};
using WeightLookup = std::function<Result<WeightSpec>(const Value& expected)>;

struct StepSpec {
  std::string name;
  Graph graph;
  int64_t max_tokens = 0;
  int64_t max_rows = 0;
};

struct CompileOptions {
  int64_t max_tokens = 512;
  int64_t max_sequences = 1;
  int64_t max_context = 4096;
  int64_t kv_block_size = 16;
  bool guard = false;          // canaries around every tensor, checked after every op
  int64_t guard_bytes = 64;
  PlannerKind planner = PlannerKind::kGreedyBySize;
  std::optional<DType> cache_dtype;  // default: the target's choice (KernelCatalog::CacheDType)
  // Stores the weights in the recipe's block formats where the target runs them (quantize_pass.h);
  // the KV cache dtype is still chosen for the checkpoint's own weight dtype.
  QuantRecipe quant = QuantRecipe::kNone;
};

// Binds weights, chooses their stored dtypes under options.quant, asks the target about every op,
// plans and verifies every step function.
Result<Program> CompileProgram(std::vector<StepSpec> steps, const KernelCatalog& catalog,
                               const WeightLookup& lookup, const CompileOptions& options);

// The planner's input for a step: one request per arena tensor (size at the step's bounds, plus
// guard bytes) and per op scratch, with lifetimes from the op order. Fills requests,
// request_owner, scratch_bytes and lower_bound_bytes. Deterministic, so a loader recomputes it
// instead of trusting stored requests.
Status BuildRequests(StepFunction& step, const KernelCatalog& catalog, int64_t max_context, int64_t guard_bytes);
// Places the step inputs (in declaration order) and binds every weight value through `bind`,
// which returns the weight's index in Program::weights (and may set the value's dtype).
Status PlaceInputsAndWeights(StepFunction& step, const std::function<Result<int32_t>(Value& weight)>& bind);
// The KV cache layouts of a graph at the given bounds: a ring of window + Tmax - 1 positions
// (at most the context) for sliding layers, the context for full layers; and their groups.
void LayoutCaches(Program& program, const Graph& graph, DType dtype);
// Verifies `plan` against the step's requests and places every tensor and scratch buffer.
Status ApplyPlan(StepFunction& step, MemoryPlan plan, int64_t alignment);

// Re-verifies every step's plan against an arena of `arena_bytes` (done at load).
Status VerifyProgram(const Program& program, int64_t arena_bytes);

}  // namespace kiln
