// The Graph IR: typed values over the symbolic dims T (tokens this step, over every sequence of
// the step) and R (rows that produce logits this step), and a list of coarse ops in execution order.
//
// A step runs a batch: any mix of sequences, each with some tokens at its own positions (a prefill
// chunk or one decode token). A model builder emits one Graph; step functions plan it at different
// bounds. Values are step inputs (token ids, positions, the step-local sequence of each token, the
// rows whose logits are wanted), weights (named checkpoint tensors, bound later), intermediates (placed in the arena
// by the memory planner) and step outputs (the logits, also in the arena). The KV cache is not a
// value: ops name a cache by index into `caches` and read/write it as a side effect, in op order,
// through the block table of each token's sequence (the step's block tables are runtime data, like
// the token ids).
//
// Shapes are 2-D or smaller ([rows, columns]); ops that work per head take the head size as an
// attribute (a [T, heads*head_dim] tensor normalised per head is an rms_norm with group_size =
// head_dim), so no reshape ops exist and every tensor is one contiguous buffer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace kiln {

enum class DimSymbol : uint8_t { kNone = 0, kTokens = 1, kRows = 2 };

// extent = value * (T | R | 1)
struct Dim {
  int64_t value = 0;
  DimSymbol symbol = DimSymbol::kNone;
  int64_t Resolve(int64_t tokens, int64_t rows) const;
};

inline Dim Tokens(int64_t multiple = 1) { return {multiple, DimSymbol::kTokens}; }
inline Dim Rows(int64_t multiple = 1) { return {multiple, DimSymbol::kRows}; }
inline Dim Const(int64_t value) { return {value, DimSymbol::kNone}; }

struct Shape {
  std::vector<Dim> dims;
  int64_t NumElements(int64_t tokens, int64_t rows) const;
  int64_t Extent(size_t axis, int64_t tokens, int64_t rows) const {
    return dims[axis].Resolve(tokens, rows);
  }
  std::string ToString() const;  // "[T, 4096]"
};

enum class ValueKind : uint8_t { kInput = 0, kWeight = 1, kIntermediate = 2, kOutput = 3 };

struct Value {
  int32_t id = -1;
  std::string name;    // intermediates: "layers.5.attn.q"; weights: checkpoint name sans prefix
  DType dtype = DType::kF32;
  Shape shape;
  ValueKind kind = ValueKind::kIntermediate;
};

// Every op kind a backend must implement. Backends build their kernel tables with a switch over
// this enum with no default, so a missing kernel is a compile error.
enum class OpKind : uint8_t {
  kEmbed = 0,        // (ids[T] i32, table[V, H]) -> [T, H] = table[ids] * scale
  kRmsNorm,          // (x[R, N], weight[G]?) -> x / rms over groups of G=group_size, * weight
  kLinear,           // (x[R, K], w[N, K]) -> x @ w^T  [R, N]
  kRope,             // (x[R, heads*d], positions[R] i32) -> rotate-half RoPE per head
  kKvAppend,         // (k[T, kv*d], v[T, kv*d], positions[T], sequences[T]) -> writes cache
                     //  `cache_index` of each token's sequence
  kAttention,        // (q[T, heads*d], positions[T], sequences[T]) -> [T, heads*d]: each token
                     //  reads cache `cache_index` of its own sequence
  kAdd,              // (a, b) -> a + b (same shape)
  kMul,              // (a, b) -> a * b (same shape)
  kScaleByWeight,    // (x, s[1]) -> x * s   (layer_scalar)
  kScale,            // (x) -> x * scale
  kGeluMul,          // (gate[R, N], up[R, N]) -> gelu_tanh(gate) * up
  kSoftcap,          // (x) -> cap * tanh(x / cap)
  kSliceColumns,     // (x[R, N]) -> x[:, column_offset : column_offset + columns]
  kGatherRows,       // (x[T, N], logit_rows[R] i32) -> [R, N] = x[logit_rows]
  kMoe,              // (x[T, H] router input, h[T, H] expert input, router_proj[E, H],
                     //  router_scale[H], per_expert_scale[E], gate_up[E, 2M, H], down[E, H, M])
                     //  -> [T, H]
  kConcatColumns,    // (a[R, Na], b[R, Nb]) -> [R, Na + Nb]: a's columns, then b's
  kCentroidHead,     // (x[R, H], w[V, H], scores[R, C], ordering[V] i32 weight) -> [R, V]: the
                     //  logits x . w[id] of only the tokens of the top_k highest-scoring
                     //  centroids (centroid c owns tokens ordering[c*V/C, (c+1)*V/C)), every
                     //  other entry the least of those minus 1 (the E2B/E4B MTP drafters'
                     //  sparse head; docs/speculative.md)
  kCount,
};
const char* OpKindName(OpKind kind);

// Attributes; each op kind reads the fields its comment names.
struct OpAttrs {
  float scale = 1.0f;          // embed, scale, attention (score scale)
  float eps = 1e-6f;           // rms_norm
  int64_t group_size = 0;      // rms_norm: normalised group length
  int64_t head_dim = 0;        // rope, attention, kv_append
  int64_t num_heads = 0;       // attention: query heads
  int64_t num_kv_heads = 0;    // attention, kv_append
  float rope_theta = 10000.0f; // rope
  int64_t rotary_dims = 0;     // rope: number of rotated frequencies (<= head_dim/2)
  float softcap = 0.0f;        // softcap
  int64_t column_offset = 0;   // slice_columns
  int32_t cache_index = -1;    // kv_append, attention
  int64_t window = 0;          // attention: sliding window (0 = full causal)
  int64_t top_k = 0;           // moe: experts per token; centroid_mask: centroids kept
};

struct Op {
  OpKind kind = OpKind::kCount;
  std::string name;               // "layers.5.attn" — for messages and plan reports
  std::vector<int32_t> inputs;    // value ids; -1 for an absent optional input
  std::vector<int32_t> outputs;   // value ids
  OpAttrs attrs;
};

// A KV cache the step function reads and writes. Capacity is decided by the compiler from the
// window and the bounds (ring of window + Tmax - 1 for sliding, the context for full).
struct CacheDecl {
  std::string name;       // "layers.5"
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t window = 0;     // 0 = full attention
};

// The step inputs, in declaration order: token_ids i32 [T], positions i32 [T], sequences i32 [T]
// (the step-local index of each token's sequence, 0..S-1), logit_rows i32 [R] (token rows whose
// logits the step returns). A drafter step (an MTP assistant reading its target's cache) declares
// two more: read_positions i32 [T], the position up to which each token's attention reads the
// cache (the target's newest cached position, one before the token's own), and hidden f32 [T, H],
// the hidden state each token continues from.
enum class StepInput : uint8_t {
  kTokenIds = 0, kPositions = 1, kSequences = 2, kLogitRows = 3, kReadPositions = 4, kHidden = 5, kCount = 6
};
inline constexpr int kTargetStepInputs = 4;  // a target step declares the first four

class Graph {
 public:
  int32_t AddInput(std::string name, DType dtype, Shape shape);
  int32_t AddWeight(std::string name, DType dtype, Shape shape);
  // Appends an op producing one new value of `dtype`/`shape`; returns the value id.
  int32_t AddOp(OpKind kind, std::string name, std::vector<int32_t> inputs, OpAttrs attrs,
                DType dtype, Shape shape);
  // Appends an op with no outputs (kv_append).
  void AddSideEffectOp(OpKind kind, std::string name, std::vector<int32_t> inputs, OpAttrs attrs);
  int32_t AddCache(CacheDecl cache);
  void MarkOutput(int32_t value_id);

  const std::vector<Value>& values() const { return values_; }
  std::vector<Value>& mutable_values() { return values_; }
  const std::vector<Op>& ops() const { return ops_; }
  const std::vector<CacheDecl>& caches() const { return caches_; }
  const Value& value(int32_t id) const { return values_[static_cast<size_t>(id)]; }
  // Step inputs in declaration order (StepInput). Outputs in declaration order: an optional
  // hidden state [R, H] (the final-normed state the logits come from, or a drafter's next
  // hidden state), then the logits [R, V].
  std::vector<int32_t> InputIds() const;
  std::vector<int32_t> OutputIds() const;

  // Reassembles a graph from decoded parts (artifact loading); Validate() before use.
  static Graph FromParts(std::vector<Value> values, std::vector<Op> ops, std::vector<CacheDecl> caches);

  // Structural checks: ids in range, every value produced before use, shapes agree with each
  // op's rule, caches exist. Returns kInternal naming the op when a builder emitted a bad graph.
  Status Validate() const;

 private:
  std::vector<Value> values_;
  std::vector<Op> ops_;
  std::vector<CacheDecl> caches_;
};

}  // namespace kiln
