#include "graph/graph.h"

namespace kiln {

int64_t Dim::Resolve(int64_t tokens, int64_t context) const {
  switch (symbol) {
    case DimSymbol::kNone: return value;
    case DimSymbol::kTokens: return value * tokens;
    case DimSymbol::kContext: return value * context;
  }
  return value;
}

int64_t Shape::NumElements(int64_t tokens, int64_t context) const {
  int64_t count = 1;
  for (const Dim& dim : dims) count *= dim.Resolve(tokens, context);
  return count;
}

std::string Shape::ToString() const {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) text += ", ";
    const Dim& dim = dims[i];
    if (dim.symbol == DimSymbol::kNone) {
      text += std::to_string(dim.value);
    } else {
      if (dim.value != 1) text += std::to_string(dim.value) + "*";
      text += dim.symbol == DimSymbol::kTokens ? "T" : "C";
    }
  }
  return text + "]";
}

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kEmbed: return "embed";
    case OpKind::kRmsNorm: return "rms_norm";
    case OpKind::kLinear: return "linear";
    case OpKind::kRope: return "rope";
    case OpKind::kKvAppend: return "kv_append";
    case OpKind::kAttention: return "attention";
    case OpKind::kAdd: return "add";
    case OpKind::kMul: return "mul";
    case OpKind::kScaleByWeight: return "scale_by_weight";
    case OpKind::kScale: return "scale";
    case OpKind::kGeluMul: return "gelu_mul";
    case OpKind::kSoftcap: return "softcap";
    case OpKind::kSliceColumns: return "slice_columns";
    case OpKind::kLastRow: return "last_row";
    case OpKind::kMoe: return "moe";
    case OpKind::kCount: break;
  }
  return "?";
}

int32_t Graph::AddInput(std::string name, DType dtype, Shape shape) {
  Value value{static_cast<int32_t>(values_.size()), std::move(name), dtype, std::move(shape),
              ValueKind::kInput};
  values_.push_back(std::move(value));
  return values_.back().id;
}

int32_t Graph::AddWeight(std::string name, DType dtype, Shape shape) {
  Value value{static_cast<int32_t>(values_.size()), std::move(name), dtype, std::move(shape),
              ValueKind::kWeight};
  values_.push_back(std::move(value));
  return values_.back().id;
}

int32_t Graph::AddOp(OpKind kind, std::string name, std::vector<int32_t> inputs, OpAttrs attrs,
                     DType dtype, Shape shape) {
  Value value{static_cast<int32_t>(values_.size()), name, dtype, std::move(shape),
              ValueKind::kIntermediate};
  values_.push_back(std::move(value));
  ops_.push_back(Op{kind, std::move(name), std::move(inputs), {values_.back().id}, attrs});
  return values_.back().id;
}

void Graph::AddSideEffectOp(OpKind kind, std::string name, std::vector<int32_t> inputs,
                            OpAttrs attrs) {
  ops_.push_back(Op{kind, std::move(name), std::move(inputs), {}, attrs});
}

int32_t Graph::AddCache(CacheDecl cache) {
  caches_.push_back(std::move(cache));
  return static_cast<int32_t>(caches_.size() - 1);
}

void Graph::MarkOutput(int32_t value_id) { values_[static_cast<size_t>(value_id)].kind = ValueKind::kOutput; }

std::vector<int32_t> Graph::InputIds() const {
  std::vector<int32_t> ids;
  for (const Value& v : values_) if (v.kind == ValueKind::kInput) ids.push_back(v.id);
  return ids;
}

std::vector<int32_t> Graph::OutputIds() const {
  std::vector<int32_t> ids;
  for (const Value& v : values_) if (v.kind == ValueKind::kOutput) ids.push_back(v.id);
  return ids;
}

namespace {

// Compares two shapes symbolically (same symbols, same multiples).
bool SameShape(const Shape& a, const Shape& b) {
  if (a.dims.size() != b.dims.size()) return false;
  for (size_t i = 0; i < a.dims.size(); ++i) {
    if (a.dims[i].value != b.dims[i].value || a.dims[i].symbol != b.dims[i].symbol) return false;
  }
  return true;
}

// Columns of a 2-D value (constant), or -1.
int64_t Columns(const Value& v) {
  if (v.shape.dims.size() != 2 || v.shape.dims[1].symbol != DimSymbol::kNone) return -1;
  return v.shape.dims[1].value;
}

}  // namespace

Status Graph::Validate() const {
  std::vector<bool> defined(values_.size(), false);
  for (const Value& v : values_) {
    if (v.kind == ValueKind::kInput || v.kind == ValueKind::kWeight) defined[static_cast<size_t>(v.id)] = true;
  }
  for (const Op& op : ops_) {
    auto fail = [&](const std::string& what) {
      return Error(ErrorCode::kInternal,
                   std::string("graph op '") + op.name + "' (" + OpKindName(op.kind) + "): " + what);
    };
    for (int32_t id : op.inputs) {
      if (id == -1) continue;
      if (id < 0 || static_cast<size_t>(id) >= values_.size()) return fail("input id out of range");
      if (!defined[static_cast<size_t>(id)]) return fail("reads value '" + values_[static_cast<size_t>(id)].name + "' before it is produced");
    }
    for (int32_t id : op.outputs) {
      if (id < 0 || static_cast<size_t>(id) >= values_.size()) return fail("output id out of range");
      if (defined[static_cast<size_t>(id)]) return fail("value produced twice");
      defined[static_cast<size_t>(id)] = true;
    }
    auto in = [&](size_t i) -> const Value& { return values_[static_cast<size_t>(op.inputs[i])]; };
    const Value* out = op.outputs.empty() ? nullptr : &values_[static_cast<size_t>(op.outputs[0])];
    switch (op.kind) {
      case OpKind::kLinear:
        if (Columns(in(0)) != Columns(in(1))) return fail("x columns " + in(0).shape.ToString() + " do not match weight " + in(1).shape.ToString());
        if (Columns(*out) != in(1).shape.dims[0].value) return fail("output columns do not match weight rows");
        break;
      case OpKind::kRmsNorm:
        if (op.attrs.group_size <= 0 || Columns(in(0)) % op.attrs.group_size != 0) return fail("group size does not divide the columns");
        if (op.inputs.size() > 1 && op.inputs[1] != -1 && in(1).shape.dims[0].value != op.attrs.group_size) return fail("norm weight length differs from the group size");
        break;
      case OpKind::kRope:
        if (op.attrs.head_dim <= 0 || Columns(in(0)) % op.attrs.head_dim != 0) return fail("head_dim does not divide the columns");
        if (op.attrs.rotary_dims * 2 > op.attrs.head_dim) return fail("more rotary frequencies than head_dim/2");
        break;
      case OpKind::kKvAppend:
      case OpKind::kAttention: {
        if (op.attrs.cache_index < 0 || static_cast<size_t>(op.attrs.cache_index) >= caches_.size()) return fail("no such cache");
        const CacheDecl& cache = caches_[static_cast<size_t>(op.attrs.cache_index)];
        if (cache.head_dim != op.attrs.head_dim || cache.num_kv_heads != op.attrs.num_kv_heads) return fail("cache geometry differs from the op's");
        if (op.kind == OpKind::kKvAppend && (Columns(in(0)) != cache.num_kv_heads * cache.head_dim || !SameShape(in(0).shape, in(1).shape))) return fail("k/v shape does not match the cache");
        if (op.kind == OpKind::kAttention && (op.attrs.num_heads % op.attrs.num_kv_heads != 0 || Columns(in(0)) != op.attrs.num_heads * op.attrs.head_dim)) return fail("query heads do not group over kv heads");
        break;
      }
      case OpKind::kAdd:
      case OpKind::kMul:
      case OpKind::kGeluMul:
        if (!SameShape(in(0).shape, in(1).shape)) return fail("operand shapes differ: " + in(0).shape.ToString() + " vs " + in(1).shape.ToString());
        break;
      case OpKind::kSliceColumns:
        if (op.attrs.column_offset + Columns(*out) > Columns(in(0))) return fail("slice past the last column");
        break;
      case OpKind::kEmbed:
      case OpKind::kScaleByWeight:
      case OpKind::kScale:
      case OpKind::kSoftcap:
      case OpKind::kLastRow:
      case OpKind::kMoe:
        break;
      case OpKind::kCount:
        return fail("invalid op kind");
    }
  }
  for (const Value& v : values_) {
    if (v.kind == ValueKind::kOutput && !defined[static_cast<size_t>(v.id)]) {
      return Error(ErrorCode::kInternal, "graph output '" + v.name + "' is never produced");
    }
  }
  return Status::Ok();
}

}  // namespace kiln
