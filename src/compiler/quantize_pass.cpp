#include "compiler/quantize_pass.h"

namespace kiln {

namespace {

// Where a weight appears: a value of one step's graph.
struct WeightValue {
  size_t step = 0;
  int32_t value = -1;
};

// Per weight, its values in every step graph.
std::vector<std::vector<WeightValue>> ValuesOfWeights(size_t num_weights, const std::vector<StepFunction>& steps) {
  std::vector<std::vector<WeightValue>> values(num_weights);
  for (size_t s = 0; s < steps.size(); ++s) {
    const std::vector<Placement>& placements = steps[s].placements;
    for (size_t id = 0; id < placements.size(); ++id) {
      const Placement& placement = placements[id];
      if (placement.where != Placement::Where::kWeight || placement.index < 0) continue;
      if (static_cast<size_t>(placement.index) < num_weights) values[static_cast<size_t>(placement.index)].push_back({s, static_cast<int32_t>(id)});
    }
  }
  return values;
}

}  // namespace

std::vector<WeightUse> WeightUses(const std::vector<WeightBinding>& weights, const std::vector<StepFunction>& steps) {
  std::vector<WeightUse> uses(weights.size());
  for (size_t w = 0; w < weights.size(); ++w) uses[w] = {weights[w].name, weights[w].source_dtype, weights[w].shape, {}};
  for (const StepFunction& step : steps) {
    for (const Op& op : step.graph.ops()) {
      for (size_t i = 0; i < op.inputs.size(); ++i) {
        const int32_t id = op.inputs[i];
        if (id < 0 || static_cast<size_t>(id) >= step.placements.size()) continue;
        const Placement& placement = step.placements[static_cast<size_t>(id)];
        if (placement.where != Placement::Where::kWeight || placement.index < 0 || static_cast<size_t>(placement.index) >= uses.size()) continue;
        std::vector<WeightConsumer>& consumers = uses[static_cast<size_t>(placement.index)].consumers;
        const WeightConsumer consumer{op.kind, static_cast<int32_t>(i)};
        // The same graph planned at several bounds: count each kind of use once.
        bool seen = false;
        for (const WeightConsumer& c : consumers) seen |= c.op == consumer.op && c.input == consumer.input;
        if (!seen) consumers.push_back(consumer);
      }
    }
  }
  return uses;
}

Status ApplyQuantRecipe(QuantRecipe recipe, const KernelCatalog& catalog, std::vector<WeightBinding>& weights,
                        std::vector<StepFunction>& steps) {
  if (recipe == QuantRecipe::kNone) return Status::Ok();
  const std::vector<WeightUse> uses = WeightUses(weights, steps);
  TRY_ASSIGN(const std::vector<std::vector<DType>> proposals, ProposeDTypes(recipe, uses));
  const std::vector<std::vector<WeightValue>> values = ValuesOfWeights(weights.size(), steps);

  auto set_dtype = [&](size_t w, DType dtype) {
    for (const WeightValue& v : values[w]) steps[v.step].graph.mutable_values()[static_cast<size_t>(v.value)].dtype = dtype;
  };
  // Whether every op reading weight w runs with it stored in the dtype its values now carry.
  auto target_accepts = [&](size_t w) {
    for (const WeightValue& v : values[w]) {
      const Graph& graph = steps[v.step].graph;
      for (const Op& op : graph.ops()) {
        bool reads = false;
        for (int32_t id : op.inputs) reads |= id == v.value;
        if (reads && !catalog.CheckOp(graph, op).ok()) return false;
      }
    }
    return true;
  };
  for (size_t w = 0; w < weights.size(); ++w) {
    WeightBinding& weight = weights[w];
    for (DType candidate : proposals[w]) {
      if (weight.shape.empty() || !DTypeRowsFit(candidate, weight.shape.back())) continue;
      set_dtype(w, candidate);
      if (target_accepts(w)) {
        weight.dtype = candidate;
        break;
      }
    }
    set_dtype(w, weight.dtype);  // the accepted candidate, or the source dtype back
  }
  return Status::Ok();
}

}  // namespace kiln
