// A test backend: the CPU backend, with each placed model wrapped in `Wrapper` (constructed from
// the CPU's placed model and the vocabulary size), so a test can give the CPU what a device
// backend has (pipelined decode, sampling rows itself) and exercise the engine's paths for it.
#pragma once

#include <memory>

#include "backends/cpu/cpu_backend.h"

namespace kiln::testing {

template <typename Wrapper>
class CpuBackendWith : public Backend {
 public:
  explicit CpuBackendWith(int64_t vocab) : vocab_(vocab) {}
  std::string target_name() const override { return inner_.target_name(); }
  int64_t alignment_bytes() const override { return inner_.alignment_bytes(); }
  Status CheckOp(const Graph& graph, const Op& op) const override { return inner_.CheckOp(graph, op); }
  int64_t ScratchBytes(const Graph& graph, const Op& op, int64_t max_tokens, int64_t max_context) const override {
    return inner_.ScratchBytes(graph, op, max_tokens, max_context);
  }
  Result<std::unique_ptr<PlacedModel>> PlaceModel(const Program& program, std::vector<WeightView> weights,
                                                  const PlacementOptions& options) override {
    TRY_ASSIGN(auto inner, inner_.PlaceModel(program, std::move(weights), options));
    auto placed = std::make_unique<Wrapper>(std::move(inner), vocab_);
    last = placed.get();
    return std::unique_ptr<PlacedModel>(std::move(placed));
  }
  Wrapper* last = nullptr;  // the most recently placed model

 private:
  CpuBackend inner_;  // the programs are compiled for the CPU
  int64_t vocab_;
};

}  // namespace kiln::testing
