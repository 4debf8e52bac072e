// The Backend interface: a target that runs a Program's step functions.
//
// A Backend is a KernelCatalog (the compiler asks it about ops, scratch and alignment) and a
// factory of PlacedModels. A PlacedModel is the Program on the target, placed once and shared by
// every sequence: the weights' placement, the kernel table, one arena (sized from the Program,
// checked against its plans; steps run one at a time) and the memory of the KV block pool. A
// sequence is runtime bookkeeping (runtime/kv_pool.h): its block table and its length. RunStep
// executes one step function over a batch of sequences; nothing is allocated while it runs.
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


struct MemoryReport {
  int64_t arena_bytes = 0;
  int64_t cache_bytes = 0;     // the KV block pool
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

// One logit row's draw on the device: its sequence's options, and which draw of that sequence's
// seed this is (the device sampler's numbers are counter-based: draw k of seed s is the same
// whatever batch it lands in).
// `allowed` (structured output): only the ids whose bit is set may be drawn, bit t of word t / 64,
// ceil(vocab / 64) words in host memory that stay valid until the step returns; null: any id.
struct RowSampling {
  DeviceSampling options;
  uint64_t draw = 0;
  const uint64_t* allowed = nullptr;
};

// One step over a batch: T tokens of S sequences. Token t belongs to sequence sequences[t] (an
// index into this step's block tables) and sits at positions[t] of it. The step returns the
// logits of the rows logit_rows (R of them, in that order).
struct StepIo {
  std::span<const int32_t> token_ids;     // T ids
  std::span<const int32_t> positions;     // T absolute positions
  std::span<const int32_t> sequences;     // T step-local sequence indices in [0, S)
  std::span<const int32_t> logit_rows;    // R token rows in [0, T)
  std::span<const int32_t> block_tables;  // S x Program::block_table_stride() pool block ids
  int64_t num_sequences = 0;              // S
  float* logits = nullptr;                // receives R x vocab floats
  // A drafter step's two more inputs (Graph StepInput::kReadPositions, kHidden): T positions up
  // to which each token's attention reads the cache, and T x H hidden-state floats.
  std::span<const int32_t> read_positions;
  std::span<const float> hidden;
  // Receives R x H floats of the step's hidden-state output (StepFunction::hidden_value), when
  // set and the step has one.
  float* hidden_out = nullptr;
  // Sampling on the device instead (where PlacedModel::SupportsRowSampling): row r is drawn with
  // sample_rows[r] into sampled[r], and `logits` is not written (may be null). R entries each.
  std::span<const RowSampling> sample_rows;
  SampledToken* sampled = nullptr;
};

// How many blocks the pool holds for each KV group (Program::kv_groups order).
struct KvPoolSize {
  std::vector<int64_t> blocks;
  // Every one of `sequences` sequences at the full context: what never runs out.
  static KvPoolSize ForSequences(const Program& program, int64_t sequences);
  int64_t bytes(const Program& program) const;
};

class PlacedModel {
 public:
  virtual ~PlacedModel() = default;
  virtual Status RunStep(const StepFunction& step, const StepIo& io) = 0;
  virtual MemoryReport memory() const = 0;
  // Copies whole blocks of a KV group, K and V of every layer in the group: block src[i] to
  // dst[i]. In order with the steps (the prefix cache keeps sliding rings this way).
  virtual bool SupportsCopyBlocks() const { return false; }
  // StepIo::sample_rows is honoured (sampling per row on the device, logits never reach the host).
  virtual bool SupportsRowSampling() const { return false; }
  virtual Status CopyBlocks(int32_t /*group*/, std::span<const int32_t> /*src*/, std::span<const int32_t> /*dst*/) {
    return Error(ErrorCode::kUnsupported, "this backend cannot copy KV blocks");
  }

  // Pipelined decode of one sequence, where the backend has it: each one-token step samples its
  // successor on the device and the next step reads it there, so steps queue up without the host
  // in between. BeginDecode: the first step feeds `token` at `position`; `block_table` (one row of
  // Program::block_table_stride() entries) must already hold blocks for every position the steps
  // will write. EnqueueDecode: one more step. NextDecoded: waits for the oldest enqueued step not
  // yet returned and returns the token it sampled. EndDecode: waits for what is in flight and drops
  // it. At most kMaxDecodeInFlight steps are enqueued and not yet returned.
  // Constrained (BeginDecode with `masked`): EnqueueDecode queues only the step's model; its draw
  // waits for SubmitDecodeMask, called once per enqueued step in order, with the bitset of the ids
  // it may draw (as RowSampling::allowed; copied, so the caller may reuse it at once). One step may
  // be enqueued ahead of its mask: the host computes the mask of step k+1 from token k while step
  // k+1's model runs.
  static constexpr int kMaxDecodeInFlight = 8;
  virtual bool SupportsDecodeOnDevice() const { return false; }
  virtual Status BeginDecode(const StepFunction& /*step*/, int32_t /*token*/, int64_t /*position*/,
                             std::span<const int32_t> /*block_table*/, const DeviceSampling& /*sampling*/, bool /*masked*/) {
    return Error(ErrorCode::kUnsupported, "this backend samples on the host");
  }
  virtual Status EnqueueDecode() { return Error(ErrorCode::kUnsupported, "this backend samples on the host"); }
  virtual Status SubmitDecodeMask(std::span<const uint64_t> /*allowed*/) {
    return Error(ErrorCode::kUnsupported, "this backend samples on the host");
  }
  virtual Result<SampledToken> NextDecoded() { return Error(ErrorCode::kUnsupported, "this backend samples on the host"); }
  virtual void EndDecode() {}
};

struct PlacementOptions {
  int num_threads = 0;  // 0 = all hardware threads
  KvPoolSize kv_pool;   // empty: Program::max_sequences sequences at the full context
  // Benchmarks of released shapes without their checkpoints: the backend creates the weights
  // itself, pseudo-random (WeightView::data is null). Only where SupportsRandomWeights().
  bool random_weights = false;
  uint64_t random_seed = 0;
};

class Backend : public KernelCatalog {
 public:
  virtual Result<std::unique_ptr<PlacedModel>> PlaceModel(const Program& program, std::vector<WeightView> weights,
                                                          const PlacementOptions& options) = 0;
  // The memory a placed model takes, known before placing it (`kiln inspect`). A placed model's
  // memory() reports the same numbers. Default: arena and pool, weights in place.
  virtual MemoryReport PlanMemory(const Program& program, const KvPoolSize& pool) const {
    return {program.arena_bytes, pool.bytes(program), 0, 0};
  }
  virtual bool SupportsRandomWeights() const { return false; }
  // The bytes a placed model may take in this backend's memory now: the machine's memory for
  // the CPU (its cgroup's limit where lower), the device's free memory for a GPU; 0 when unknown.
  // Runner::Create refuses a plan larger than this before allocating any of it.
  virtual int64_t MemoryCapacity() const { return 0; }
};

}  // namespace kiln
