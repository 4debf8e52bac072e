#include "graph/graph.h"

namespace kiln {

int64_t Dim::Resolve(int64_t tokens, int64_t rows) const {
  switch (symbol) {
    case DimSymbol::kNone: return value;
    case DimSymbol::kTokens: return value * tokens;
    case DimSymbol::kRows: return value * rows;
  }
  return value;
}

int64_t Shape::NumElements(int64_t tokens, int64_t rows) const {
  int64_t count = 1;
  for (const Dim& dim : dims) count *= dim.Resolve(tokens, rows);
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
      text += dim.symbol == DimSymbol::kTokens ? "T" : "R";
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
    case OpKind::kGatherRows: return "gather_rows";
    case OpKind::kConcatColumns: return "concat_columns";
    case OpKind::kCentroidHead: return "centroid_head";
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

Graph Graph::FromParts(std::vector<Value> values, std::vector<Op> ops, std::vector<CacheDecl> caches) {
  Graph graph;
  graph.values_ = std::move(values);
  graph.ops_ = std::move(ops);
  graph.caches_ = std::move(caches);
  return graph;
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

}  // namespace kiln
