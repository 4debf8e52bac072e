// The Backend interface: a target that runs a Program's step functions.
//
// A Backend is a KernelCatalog (the compiler asks it about ops, scratch and alignment) and a
// factory of BackendSessions. A BackendSession owns the target's memory for one sequence: the
// arena (sized from the Program, checked against its plans), the KV cache, and the weights'
// placement. RunStep executes one step function; nothing is allocated while it runs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compiler/kernel_catalog.h"
#include "compiler/program.h"

namespace kiln {

// A weight as the source holds it (mmap'd checkpoint or artifact), in Program::weights order.
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::kBF16;
  int64_t size_bytes = 0;
};

struct StepIo {
  std::span<const int32_t> token_ids;   // T ids
  std::span<const int32_t> positions;   // T absolute positions
  float* logits = nullptr;              // receives the step output (rows x vocab floats)
};

struct MemoryReport {
  int64_t arena_bytes = 0;
  int64_t cache_bytes = 0;
  int64_t weight_bytes = 0;    // bytes the backend placed (0 when used in place from mmap)
  int64_t other_bytes = 0;     // step inputs, library workspaces, sampling buffers
  int64_t total() const { return arena_bytes + cache_bytes + weight_bytes + other_bytes; }
};

// Sampling done by the backend itself, next to the logits (greedy when temperature is 0).
struct DeviceSampling {
  float temperature = 0.0f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0.0f;  // log-softmax of the raw logits at `id`
};

class BackendSession {
 public:
  virtual ~BackendSession() = default;
  virtual Status RunStep(const StepFunction& step, const StepIo& io) = 0;
  virtual MemoryReport memory() const = 0;

  // Pipelined decode, where the backend has it: each one-token step samples its successor on
  // the device and the next step reads it there, so steps queue up without the host in between.
  // BeginDecode: the first step feeds `token` at `position`. EnqueueDecode: one more step.
  // NextDecoded: waits for the oldest enqueued step not yet returned and returns the token it
  // sampled. EndDecode: waits for what is in flight and drops it. At most kMaxDecodeInFlight
  // steps are enqueued and not yet returned.
  static constexpr int kMaxDecodeInFlight = 8;
  virtual bool SupportsDecodeOnDevice() const { return false; }
  virtual Status BeginDecode(const StepFunction& /*step*/, int32_t /*token*/, int64_t /*position*/,
                             const DeviceSampling& /*sampling*/) {
    return Error(ErrorCode::kUnsupported, "this backend samples on the host");
  }
  virtual Status EnqueueDecode() { return Error(ErrorCode::kUnsupported, "this backend samples on the host"); }
  virtual Result<SampledToken> NextDecoded() { return Error(ErrorCode::kUnsupported, "this backend samples on the host"); }
  virtual void EndDecode() {}
};

struct BackendSessionOptions {
  int num_threads = 0;  // 0 = all hardware threads
  // Benchmarks of released shapes without their checkpoints: the backend creates the weights
  // itself, pseudo-random (WeightView::data is null). Only where SupportsRandomWeights().
  bool random_weights = false;
  uint64_t random_seed = 0;
};

class Backend : public KernelCatalog {
 public:
  virtual Result<std::unique_ptr<BackendSession>> CreateSession(
      const Program& program, std::vector<WeightView> weights, const BackendSessionOptions& options) = 0;
  // The memory a session of `program` takes, known before creating one (`kiln inspect`). A
  // session's memory() reports the same numbers. Default: arena and cache, weights in place.
  virtual MemoryReport PlanMemory(const Program& program) const {
    return {program.arena_bytes, program.cache_bytes(), 0, 0};
  }
  virtual bool SupportsRandomWeights() const { return false; }
};

}  // namespace kiln
