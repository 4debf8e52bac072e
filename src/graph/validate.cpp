// Graph::Validate: everything a kernel relies on, checked once so kernels can trust it. Graphs
// come from the model builder or from an untrusted .kiln file, so nothing is assumed: arity,
// value kinds, dtypes, shapes per op, cache geometry, and that every value is produced before it
// is read.
#include "graph/graph.h"

namespace kiln {

namespace {

constexpr int64_t kMaxExtent = int64_t{1} << 40;

bool SameDim(const Dim& a, const Dim& b) { return a.value == b.value && a.symbol == b.symbol; }

bool SameShape(const Shape& a, const Shape& b) {
  if (a.dims.size() != b.dims.size()) return false;
  for (size_t i = 0; i < a.dims.size(); ++i) if (!SameDim(a.dims[i], b.dims[i])) return false;
  return true;
}

bool IsTokens(const Dim& d) { return d.symbol == DimSymbol::kTokens && d.value == 1; }
bool IsRows(const Dim& d) { return d.symbol == DimSymbol::kRows && d.value == 1; }

// Value-level rules, independent of ops.
std::string CheckValue(const Value& v, int32_t input_index) {
  if (v.shape.dims.empty() || v.shape.dims.size() > 3) return "has " + std::to_string(v.shape.dims.size()) + " dims (1 to 3 allowed)";
  int64_t elements = 1;
  for (const Dim& d : v.shape.dims) {
    if (d.value < 1 || d.value > kMaxExtent || static_cast<uint8_t>(d.symbol) > 2) return "has an invalid dim";
    if (__builtin_mul_overflow(elements, d.value, &elements) || elements > kMaxExtent) return "has more than 2^40 elements";
  }
  if (!IsKnownDType(static_cast<uint8_t>(v.dtype))) return "has an invalid dtype";
  switch (v.kind) {
    case ValueKind::kInput:
      // Inputs in StepInput order: token ids, positions, sequences (i32 [T]), logit rows (i32 [R]);
      // a drafter's read positions (i32 [T]) and hidden state (f32 [T, H]).
      if (input_index >= static_cast<int32_t>(StepInput::kCount)) return "is a seventh step input";
      if (input_index == static_cast<int32_t>(StepInput::kLogitRows)) {
        if (v.dtype != DType::kI32 || v.shape.dims.size() != 1 || !IsRows(v.shape.dims[0])) return "must be i32 [R]";
        return "";
      }
      if (input_index == static_cast<int32_t>(StepInput::kHidden)) {
        if (v.dtype != DType::kF32 || v.shape.dims.size() != 2 || !IsTokens(v.shape.dims[0]) || v.shape.dims[1].symbol != DimSymbol::kNone) {
          return "must be f32 [T, columns]";
        }
        return "";
      }
      if (v.dtype != DType::kI32 || v.shape.dims.size() != 1 || !IsTokens(v.shape.dims[0])) return "must be i32 [T]";
      return "";
    case ValueKind::kWeight:
      for (const Dim& d : v.shape.dims) if (d.symbol != DimSymbol::kNone) return "is a weight with a symbolic dim";
      // Block formats (quantized weights) only where each row is whole blocks.
      if (IsBlockDType(v.dtype) && !DTypeRowsFit(v.dtype, v.shape.dims.back().value)) return "has rows that are not whole blocks of its dtype";
      return "";
    case ValueKind::kIntermediate:
    case ValueKind::kOutput:
      if (v.dtype != DType::kF32) return "is an activation that is not f32";
      if (v.shape.dims.size() != 2 || v.shape.dims[1].symbol != DimSymbol::kNone) return "must be [rows, columns] with constant columns";
      if (!IsTokens(v.shape.dims[0]) && !IsRows(v.shape.dims[0])) return "must have T or R rows";
      return "";
  }
  return "has an invalid kind";
}

struct Arity {
  size_t inputs;
  size_t outputs;
};

Arity ArityOf(OpKind kind) {
  switch (kind) {
    case OpKind::kEmbed: return {2, 1};
    case OpKind::kRmsNorm: return {2, 1};
    case OpKind::kLinear: return {2, 1};
    case OpKind::kRope: return {2, 1};
    case OpKind::kKvAppend: return {4, 0};
    case OpKind::kAttention: return {3, 1};
    case OpKind::kAdd: return {2, 1};
    case OpKind::kMul: return {2, 1};
    case OpKind::kScaleByWeight: return {2, 1};
    case OpKind::kScale: return {1, 1};
    case OpKind::kGeluMul: return {2, 1};
    case OpKind::kSoftcap: return {1, 1};
    case OpKind::kSliceColumns: return {1, 1};
    case OpKind::kGatherRows: return {2, 1};
    case OpKind::kMoe: return {7, 1};
    case OpKind::kConcatColumns: return {2, 1};
    case OpKind::kCentroidHead: return {4, 1};
    case OpKind::kCount: break;
  }
  return {0, 0};
}

}  // namespace

Status Graph::Validate() const {
  for (size_t i = 0; i < values_.size(); ++i) {
    if (values_[i].id != static_cast<int32_t>(i)) return Error(ErrorCode::kInternal, "graph value " + std::to_string(i) + " has id " + std::to_string(values_[i].id));
  }
  int32_t input_index = 0, outputs = 0;
  std::vector<bool> defined(values_.size(), false);
  for (const Value& v : values_) {
    const std::string problem = CheckValue(v, v.kind == ValueKind::kInput ? input_index++ : 0);
    if (!problem.empty()) return Error(ErrorCode::kInternal, "graph value '" + v.name + "' " + problem);
    if (v.kind == ValueKind::kInput || v.kind == ValueKind::kWeight) defined[static_cast<size_t>(v.id)] = true;
    if (v.kind == ValueKind::kOutput) ++outputs;
  }
  if (input_index != kTargetStepInputs && input_index != static_cast<int32_t>(StepInput::kCount)) {
    return Error(ErrorCode::kInternal, "graph needs 4 step inputs (token ids, positions, sequences, logit rows), or 6 for a drafter "
                                       "(and read positions, hidden state), has " + std::to_string(input_index));
  }
  if (outputs != 1 && outputs != 2) {
    return Error(ErrorCode::kInternal, "graph needs 1 or 2 outputs (the logits, after an optional hidden state), has " + std::to_string(outputs));
  }
  for (int32_t id : OutputIds()) {
    if (!IsRows(values_[static_cast<size_t>(id)].shape.dims[0])) return Error(ErrorCode::kInternal, "graph output '" + values_[static_cast<size_t>(id)].name + "' must have R rows");
  }
  for (const CacheDecl& cache : caches_) {
    if (cache.num_kv_heads < 1 || cache.head_dim < 1 || cache.num_kv_heads * cache.head_dim > kMaxExtent || cache.window < 0) {
      return Error(ErrorCode::kInternal, "cache '" + cache.name + "' has invalid geometry");
    }
  }
  const std::vector<int32_t> input_ids = InputIds();
  const int32_t positions_id = input_ids[static_cast<size_t>(StepInput::kPositions)];
  const int32_t sequences_id = input_ids[static_cast<size_t>(StepInput::kSequences)];
  const int32_t logit_rows_id = input_ids[static_cast<size_t>(StepInput::kLogitRows)];
  // A drafter's attention reads the cache up to its read positions; a target's up to the token's own.
  const int32_t read_positions_id = input_ids.size() > static_cast<size_t>(StepInput::kReadPositions)
                                        ? input_ids[static_cast<size_t>(StepInput::kReadPositions)] : positions_id;
  const int32_t hidden_id = input_ids.size() > static_cast<size_t>(StepInput::kHidden) ? input_ids[static_cast<size_t>(StepInput::kHidden)] : -1;

  for (const Op& op : ops_) {
    auto fail = [&](const std::string& what) {
      return Error(ErrorCode::kInternal, std::string("graph op '") + op.name + "' (" + OpKindName(op.kind) + "): " + what);
    };
    const Arity arity = ArityOf(op.kind);
    if (op.kind == OpKind::kCount || static_cast<uint8_t>(op.kind) > static_cast<uint8_t>(OpKind::kCount)) return fail("invalid op kind");
    if (op.inputs.size() != arity.inputs || op.outputs.size() != arity.outputs) {
      return fail("expects " + std::to_string(arity.inputs) + " inputs and " + std::to_string(arity.outputs) + " outputs");
    }
    for (size_t i = 0; i < op.inputs.size(); ++i) {
      const int32_t id = op.inputs[i];
      const bool optional = op.kind == OpKind::kRmsNorm && i == 1;
      if (id == -1 && optional) continue;
      if (id < 0 || static_cast<size_t>(id) >= values_.size()) return fail("input id out of range");
      if (!defined[static_cast<size_t>(id)]) return fail("reads value '" + values_[static_cast<size_t>(id)].name + "' before it is produced");
    }
    for (int32_t id : op.outputs) {
      if (id < 0 || static_cast<size_t>(id) >= values_.size()) return fail("output id out of range");
      const Value& out = values_[static_cast<size_t>(id)];
      if (out.kind != ValueKind::kIntermediate && out.kind != ValueKind::kOutput) return fail("writes an input or a weight");
      if (defined[static_cast<size_t>(id)]) return fail("value produced twice");
      defined[static_cast<size_t>(id)] = true;
    }
    auto in = [&](size_t i) -> const Value& { return values_[static_cast<size_t>(op.inputs[i])]; };
    auto is_activation = [&](size_t i) { return in(i).kind == ValueKind::kIntermediate || in(i).kind == ValueKind::kOutput; };
    auto is_weight = [&](size_t i, size_t rank) { return in(i).kind == ValueKind::kWeight && in(i).shape.dims.size() == rank; };
    auto columns = [](const Value& v) { return v.shape.dims.back().value; };
    const Value* out = op.outputs.empty() ? nullptr : &values_[static_cast<size_t>(op.outputs[0])];
    const OpAttrs& a = op.attrs;
    for (size_t i = 0; i < op.inputs.size(); ++i) {
      if (op.inputs[i] >= 0 && in(i).kind == ValueKind::kInput && !((op.kind == OpKind::kEmbed && i == 0) ||
          (op.kind == OpKind::kRope && i == 1) || (op.kind == OpKind::kAttention && i >= 1) ||
          (op.kind == OpKind::kKvAppend && i >= 2) || (op.kind == OpKind::kGatherRows && i == 1) ||
          (op.kind == OpKind::kConcatColumns && op.inputs[i] == hidden_id))) {
        return fail("reads a step input where it expects a tensor");
      }
    }
    // The one integer weight kiln computes with: a centroid head's token ordering.
    for (size_t i = 0; i < op.inputs.size(); ++i) {
      if (op.inputs[i] >= 0 && in(i).kind == ValueKind::kWeight && (in(i).dtype == DType::kI32) != (op.kind == OpKind::kCentroidHead && i == 3)) {
        return fail(in(i).dtype == DType::kI32 ? "reads an integer weight" : "expects an i32 token ordering");
      }
    }
    auto cache = [&]() -> const CacheDecl* {
      if (a.cache_index < 0 || static_cast<size_t>(a.cache_index) >= caches_.size()) return nullptr;
      const CacheDecl& c = caches_[static_cast<size_t>(a.cache_index)];
      return (c.head_dim == a.head_dim && c.num_kv_heads == a.num_kv_heads) ? &c : nullptr;
    };
    switch (op.kind) {
      case OpKind::kEmbed:
        if (op.inputs[0] != input_ids[0] || !is_weight(1, 2)) return fail("expects (token ids, 2-D table)");
        if (!IsTokens(out->shape.dims[0]) || columns(*out) != columns(in(1))) return fail("output must be [T, table columns]");
        break;
      case OpKind::kRmsNorm:
        if (!is_activation(0) || !SameShape(in(0).shape, out->shape)) return fail("output shape differs from input");
        if (a.group_size <= 0 || columns(in(0)) % a.group_size != 0) return fail("group size does not divide the columns");
        if (op.inputs[1] != -1 && (!is_weight(1, 1) || columns(in(1)) != a.group_size)) return fail("norm weight length differs from the group size");
        break;
      case OpKind::kLinear:
        if (!is_activation(0) || !is_weight(1, 2)) return fail("expects (activation, 2-D weight)");
        if (columns(in(0)) != columns(in(1))) return fail("x columns " + in(0).shape.ToString() + " do not match weight " + in(1).shape.ToString());
        if (!SameDim(out->shape.dims[0], in(0).shape.dims[0]) || columns(*out) != in(1).shape.dims[0].value) return fail("output shape does not match x rows and weight rows");
        break;
      case OpKind::kRope:
        if (!is_activation(0) || op.inputs[1] != positions_id || !SameShape(in(0).shape, out->shape) || !IsTokens(in(0).shape.dims[0])) return fail("expects ([T, heads*d], positions)");
        if (a.head_dim <= 0 || a.head_dim % 2 != 0 || columns(in(0)) % a.head_dim != 0) return fail("head_dim does not divide the columns");
        if (a.rotary_dims < 0 || a.rotary_dims * 2 > a.head_dim) return fail("more rotary frequencies than head_dim/2");
        break;
      case OpKind::kKvAppend: {
        const CacheDecl* c = cache();
        if (!c) return fail("no cache with this geometry");
        if (!is_activation(0) || !is_activation(1) || op.inputs[2] != positions_id || op.inputs[3] != sequences_id) {
          return fail("expects (k, v, positions, sequences)");
        }
        if (columns(in(0)) != c->num_kv_heads * c->head_dim || !SameShape(in(0).shape, in(1).shape) || !IsTokens(in(0).shape.dims[0])) return fail("k/v shape does not match the cache");
        break;
      }
      case OpKind::kAttention: {
        const CacheDecl* c = cache();
        if (!c) return fail("no cache with this geometry");
        if (!is_activation(0) || op.inputs[1] != read_positions_id || op.inputs[2] != sequences_id || !SameShape(in(0).shape, out->shape) ||
            !IsTokens(in(0).shape.dims[0])) {
          return fail("expects ([T, heads*d], positions (read positions in a drafter), sequences)");
        }
        if (a.num_heads < 1 || a.num_kv_heads < 1 || a.num_heads % a.num_kv_heads != 0 || columns(in(0)) != a.num_heads * a.head_dim) return fail("query heads do not group over kv heads");
        if (a.window < 0 || (c->window > 0 && (a.window < 1 || a.window > c->window))) return fail("window exceeds what the cache keeps");
        break;
      }
      case OpKind::kAdd:
      case OpKind::kMul:
      case OpKind::kGeluMul:
        if (!is_activation(0) || !is_activation(1) || !SameShape(in(0).shape, in(1).shape) || !SameShape(in(0).shape, out->shape)) {
          return fail("operand shapes differ: " + in(0).shape.ToString() + " vs " + in(1).shape.ToString());
        }
        break;
      case OpKind::kScale:
      case OpKind::kSoftcap:
        if (!is_activation(0) || !SameShape(in(0).shape, out->shape)) return fail("output shape differs from input");
        if (op.kind == OpKind::kSoftcap && !(a.softcap > 0.0f)) return fail("softcap must be positive");
        break;
      case OpKind::kScaleByWeight:
        if (!is_activation(0) || !SameShape(in(0).shape, out->shape) || !is_weight(1, 1) || columns(in(1)) != 1) return fail("expects (activation, [1] weight)");
        break;
      case OpKind::kSliceColumns:
        if (!is_activation(0) || !SameDim(in(0).shape.dims[0], out->shape.dims[0])) return fail("rows differ");
        if (a.column_offset < 0 || a.column_offset + columns(*out) > columns(in(0))) return fail("slice past the last column");
        break;
      case OpKind::kGatherRows:
        if (!is_activation(0) || !IsTokens(in(0).shape.dims[0]) || op.inputs[1] != logit_rows_id || !IsRows(out->shape.dims[0]) ||
            columns(*out) != columns(in(0))) {
          return fail("expects ([T, columns], logit rows) -> [R, columns]");
        }
        break;
      case OpKind::kConcatColumns:
        if (!SameDim(in(0).shape.dims[0], in(1).shape.dims[0]) || !SameDim(in(0).shape.dims[0], out->shape.dims[0]) ||
            in(0).shape.dims.size() != 2 || in(1).shape.dims.size() != 2 || columns(*out) != columns(in(0)) + columns(in(1))) {
          return fail("expects ([rows, a], [rows, b]) -> [rows, a + b]");
        }
        if ((!is_activation(0) && op.inputs[0] != hidden_id) || (!is_activation(1) && op.inputs[1] != hidden_id)) return fail("expects activations");
        break;
      case OpKind::kCentroidHead: {
        if (!is_activation(0) || !is_weight(1, 2) || !is_activation(2) || !is_weight(3, 1) || in(0).shape.dims.size() != 2 ||
            in(2).shape.dims.size() != 2 || out->shape.dims.size() != 2 || !SameDim(in(0).shape.dims[0], in(2).shape.dims[0]) ||
            !SameDim(in(0).shape.dims[0], out->shape.dims[0]) || columns(in(1)) != columns(in(0)) ||
            in(1).shape.dims[0].value != columns(*out)) {
          return fail("expects (x [rows, H], head [V, H], centroid scores [rows, C], ordering [V]) -> [rows, V]");
        }
        const int64_t vocab = columns(*out), centroids = columns(in(2));
        if (columns(in(3)) != vocab || vocab % centroids != 0) return fail("the ordering is not V entries, C groups of V / C tokens");
        if (a.top_k < 1 || a.top_k > centroids) return fail("top_k outside [1, centroids]");
        break;
      }
      case OpKind::kMoe: {
        if (!is_activation(0) || !is_activation(1) || !SameShape(in(0).shape, in(1).shape) || !SameShape(in(0).shape, out->shape)) return fail("x, h and output shapes differ");
        if (!is_weight(2, 2) || !is_weight(3, 1) || !is_weight(4, 1) || !is_weight(5, 3) || !is_weight(6, 3)) return fail("expects router [E, H], scale [H], per-expert [E], gate_up [E, 2M, H], down [E, H, M]");
        const int64_t hidden = columns(in(0)), experts = in(2).shape.dims[0].value, width = in(6).shape.dims[2].value;
        const auto& gu = in(5).shape.dims;
        const auto& down = in(6).shape.dims;
        if (columns(in(2)) != hidden || columns(in(3)) != hidden || columns(in(4)) != experts || gu[0].value != experts ||
            gu[1].value != 2 * width || gu[2].value != hidden || down[0].value != experts || down[1].value != hidden) {
          return fail("expert weight shapes disagree");
        }
        if (a.top_k < 1 || a.top_k > experts) return fail("top_k outside [1, experts]");
        break;
      }
      case OpKind::kCount:
        return fail("invalid op kind");
    }
  }
  for (const Value& v : values_) {
    if ((v.kind == ValueKind::kOutput || v.kind == ValueKind::kIntermediate) && !defined[static_cast<size_t>(v.id)]) {
      return Error(ErrorCode::kInternal, "graph value '" + v.name + "' is never produced");
    }
  }
  return Status::Ok();
}

}  // namespace kiln
