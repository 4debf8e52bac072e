#include "compiler/plan_report.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace kiln {

std::string FormatBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.2f %s", value, units[unit]);
  return text;
}

namespace {

// "layers.12.self_attn.q" -> 12; -1 for ops outside layers.
int LayerOf(const std::string& op_name) {
  if (op_name.rfind("layers.", 0) != 0) return -1;
  return std::atoi(op_name.c_str() + 7);
}

}  // namespace

std::string FormatPlanReport(const Program& program, int largest_tensors) {
  std::string out;
  char line[256];
  for (const StepFunction& step : program.steps) {
    const double ratio = step.lower_bound_bytes > 0
        ? static_cast<double>(step.plan.arena_bytes) / static_cast<double>(step.lower_bound_bytes) : 1.0;
    std::snprintf(line, sizeof(line), "step %-8s T<=%-6lld ops %-6zu arena %s  lower bound %s  ratio %.3f%s\n",
                  step.name.c_str(), static_cast<long long>(step.max_tokens), step.graph.ops().size(),
                  FormatBytes(step.plan.arena_bytes).c_str(), FormatBytes(step.lower_bound_bytes).c_str(), ratio,
                  step.guard_bytes ? "  (guard bytes on)" : "");
    out += line;

    std::vector<size_t> order(step.requests.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return step.requests[a].size_bytes > step.requests[b].size_bytes;
    });
    out += "  largest tensors:\n";
    for (size_t k = 0; k < order.size() && static_cast<int>(k) < largest_tensors; ++k) {
      const size_t r = order[k];
      const int32_t owner = step.request_owner[r];
      std::string name, shape;
      if (owner >= 0) {
        const Value& value = step.graph.value(owner);
        name = value.name;
        shape = value.shape.ToString();
      } else {
        name = step.graph.ops()[static_cast<size_t>(-owner - 1)].name + " (scratch)";
      }
      std::snprintf(line, sizeof(line), "    %-44s %-16s %12s at offset %lld\n", name.c_str(), shape.c_str(),
                    FormatBytes(step.requests[r].size_bytes).c_str(),
                    static_cast<long long>(step.plan.offsets_bytes[r]));
      out += line;
    }

    // Live bytes at each op, then the peak within each layer.
    std::vector<int64_t> live(step.graph.ops().size() + 1, 0);
    for (const BufferRequest& request : step.requests) {
      for (int32_t i = request.first_step; i <= request.last_step; ++i) live[static_cast<size_t>(i)] += request.size_bytes;
    }
    std::map<int, int64_t> peak_by_layer;
    for (size_t i = 0; i < step.graph.ops().size(); ++i) {
      int64_t& peak = peak_by_layer[LayerOf(step.graph.ops()[i].name)];
      peak = std::max(peak, live[i]);
    }
    out += "  peak live bytes per layer:";
    int column = 0;
    for (const auto& [layer, peak] : peak_by_layer) {
      if (column++ % 6 == 0) out += "\n   ";
      std::snprintf(line, sizeof(line), " %5s %-11s", layer < 0 ? "other" : std::to_string(layer).c_str(),
                    FormatBytes(peak).c_str());
      out += line;
    }
    out += "\n";
  }
  return out;
}

}  // namespace kiln
