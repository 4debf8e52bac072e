#include "compiler/quant_report.h"

#include <algorithm>
#include <cstdio>
#include <tuple>

#include "compiler/plan_report.h"
#include "compiler/quantize_pass.h"

namespace kiln {

namespace {

int64_t Elements(const WeightBinding& weight) {
  int64_t count = 1;
  for (int64_t d : weight.shape) count *= d;
  return count;
}

}  // namespace

std::vector<QuantGroup> GroupWeightsByRole(const Program& program) {
  const std::vector<WeightUse> uses = WeightUses(program.weights, program.steps);
  std::vector<QuantGroup> groups;
  for (size_t i = 0; i < program.weights.size(); ++i) {
    const WeightBinding& weight = program.weights[i];
    // A weight the recipe proposed a dtype for but the target refused, or one no rule touches,
    // is reported as kept when it stays as the source stores it.
    const WeightRole role = weight.dtype == weight.source_dtype ? WeightRole::kKeep : RoleOf(uses[i]);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const QuantGroup& g) {
      return g.role == role && g.dtype == weight.dtype && g.source_dtype == weight.source_dtype;
    });
    if (it == groups.end()) it = groups.insert(groups.end(), QuantGroup{role, weight.dtype, weight.source_dtype, 0, 0, 0});
    it->count += 1;
    it->bytes += weight.size_bytes();
    it->source_bytes += DTypeBytes(weight.source_dtype, Elements(weight));
  }
  // kKeep is first in the enum; report it last, after what was packed.
  auto order = [](const QuantGroup& g) {
    return std::tuple(g.role == WeightRole::kKeep, static_cast<int>(g.role), static_cast<int>(g.dtype), static_cast<int>(g.source_dtype));
  };
  std::sort(groups.begin(), groups.end(), [&](const QuantGroup& a, const QuantGroup& b) { return order(a) < order(b); });
  return groups;
}

std::string FormatQuantReport(const Program& program) {
  if (program.quant_recipe == QuantRecipe::kNone) return "quant     none (weights as the source stores them)\n";
  const std::vector<QuantGroup> groups = GroupWeightsByRole(program);
  int64_t packed = 0, bytes = 0, source_bytes = 0;
  for (const QuantGroup& g : groups) {
    if (g.dtype != g.source_dtype) packed += g.count;
    bytes += g.bytes;
    source_bytes += g.source_bytes;
  }
  std::string text = std::string("quant     ") + QuantRecipeName(program.quant_recipe) + ": " + std::to_string(packed) + " of " +
                     std::to_string(program.weights.size()) + " weights packed; " + FormatBytes(source_bytes) +
                     " as stored in the source -> " + FormatBytes(bytes) + "\n";
  char line[256];
  for (const QuantGroup& g : groups) {
    const std::string count = std::to_string(g.count) + (g.count == 1 ? " tensor" : " tensors");
    std::snprintf(line, sizeof(line), "          %-16s %-8s %12s %12s", WeightRoleName(g.role), DTypeName(g.dtype), count.c_str(),
                  FormatBytes(g.bytes).c_str());
    text += line;
    if (g.dtype != g.source_dtype) text += std::string("  (") + DTypeName(g.source_dtype) + ": " + FormatBytes(g.source_bytes) + ")";
    text += "\n";
  }
  return text;
}

}  // namespace kiln
