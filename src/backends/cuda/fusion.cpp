#include "backends/cuda/fusion.h"

#include "backends/cuda/kernels/gemv.cuh"

namespace kiln::cuda {

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
    while (j < i + kGemvMaxTargets && is(j, OpKind::kLinear) && ops[j].inputs[0] == op.inputs[0] &&
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

std::vector<Fusion> FindFusions(const StepFunction& step) {
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

}  // namespace kiln::cuda
