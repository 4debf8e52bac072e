// CudaPlacedModel: a Program placed on the GPU once and shared by every sequence of a Runner.
//
// It owns the device memory: the weights (one allocation; block formats rewritten into the split
// layout of kernels/block_formats.cuh as they are uploaded), the activation arena, the KV block
// pool (per cache layer, K and V of blocks(group) * block_size rows each) and the step inputs.
// A step's inputs travel in one copy from pinned host memory into a device buffer sized at the
// Program's bounds, packed for the step's T tokens and R logit rows (InputLayout), so the same
// (step, T) always reads them at the same addresses: steps whose launches depend only on the
// shapes are captured once as CUDA graphs per (step, T) and replayed.
//
// The kernels of each op are chosen per launch from the step's token count (kernels/*.cuh):
// weight-streaming GEMVs up to 4 rows, cuBLASLt beyond; split-K decode attention when every token
// is its own sequence (a decode batch) or the step is tiny, the tensor-core prefill kernel (bf16
// cache) or the reference kernel otherwise.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <list>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/fusion.h"
#include "backends/cuda/kernels/kernels.cuh"
#include "backends/cuda/kernels/sampling.cuh"
#include "runtime/backend.h"

namespace kiln::cuda {

Error CudaFailure(cudaError_t status, const std::string& what);

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
using DeviceBuffer = std::unique_ptr<uint8_t, DeviceFree>;
Result<DeviceBuffer> Allocate(int64_t bytes, const std::string& what);

inline WeightType TypeOf(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return WeightType::kBF16;
    case DType::kF16: return WeightType::kF16;
    case DType::kQ8_0: return WeightType::kQ8_0;
    case DType::kQ4_0: return WeightType::kQ4_0;
    case DType::kQ4_K: return WeightType::kQ4_K;
    case DType::kQ6_K: return WeightType::kQ6_K;
    case DType::kF8_E4M3: return WeightType::kF8E4M3;
    case DType::kQ5_0: return WeightType::kQ5_0;
    case DType::kQ5_1: return WeightType::kQ5_1;
    case DType::kQ4_1: return WeightType::kQ4_1;
    case DType::kQ5_K: return WeightType::kQ5_K;
    case DType::kF32:
    case DType::kI32: break;
  }
  return WeightType::kF32;
}
inline int64_t AlignUp(int64_t bytes, int64_t alignment) { return (bytes + alignment - 1) / alignment * alignment; }

inline constexpr int64_t kWeightAlignment = 256;

// Bytes a weight takes on the device: as stored for element types; block formats are placed in
// the split layout of kernels/block_formats.cuh (the same bytes, each section 256-byte aligned).
// Not yet rounded to kWeightAlignment.
int64_t PlacedWeightBytes(const WeightBinding& binding);

// Where a step's inputs sit in the device input buffer (int32 offsets), for T tokens and R rows:
// token ids, positions, sequences (T each), logit rows (R), the runs of the step (T + 1 token
// offsets: maximal spans of one sequence at consecutive positions), a drafter's read positions
// (T) and hidden state (T x hidden_columns floats) when the program has a drafter
// (hidden_columns > 0), and the block tables.
struct InputLayout {
  int64_t token_ids, positions, sequences, logit_rows, runs, read_positions, hidden, block_tables, end;
  static InputLayout For(int64_t tokens, int64_t rows, int64_t tables, int64_t hidden_columns) {
    InputLayout l{};
    l.token_ids = 0;
    l.positions = tokens;
    l.sequences = 2 * tokens;
    l.logit_rows = 3 * tokens;
    l.runs = 3 * tokens + rows;
    l.read_positions = l.runs + tokens + 1;
    l.hidden = l.read_positions + (hidden_columns > 0 ? tokens : 0);
    l.block_tables = l.hidden + tokens * hidden_columns;
    l.end = l.block_tables + tables;
    return l;
  }
};
// Columns of the drafter's hidden-state input (0 without a drafter step).
int64_t DraftHiddenColumns(const Program& program);
// Bytes of the input buffer of a program: the largest layout.
int64_t StepInputBytes(const Program& program);
// Memory a placed model takes besides the arena, the pool and the weights.
int64_t OtherBytes(const Program& program);

struct DeviceTensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, columns = 0;
  float* f32() const { return static_cast<float*>(data); }
  const int32_t* i32() const { return static_cast<const int32_t*>(data); }
};

struct DeviceCache {
  void* k = nullptr;
  void* v = nullptr;
  WeightType type = WeightType::kF32;
  KvPages pages;  // block_tables filled in per step
};

class CudaPlacedModel : public PlacedModel {
 public:
  explicit CudaPlacedModel(const Program& program) : program_(program) {}
  ~CudaPlacedModel() override;

  Status Init(const std::vector<WeightView>& weights, const PlacementOptions& options);

  Status RunStep(const StepFunction& step, const StepIo& io) override;
  MemoryReport memory() const override { return {program_.arena_bytes, cache_bytes_, weight_bytes_, OtherBytes(program_)}; }

  bool SupportsCopyBlocks() const override { return true; }
  Status CopyBlocks(int32_t group, std::span<const int32_t> src, std::span<const int32_t> dst) override;

  bool SupportsDecodeOnDevice() const override { return sampling_ != nullptr; }
  bool SupportsRowSampling() const override { return row_slots_host_ != nullptr; }
  Status BeginDecode(const StepFunction& step, int32_t token, int64_t position, std::span<const int32_t> block_table,
                     const kiln::DeviceSampling& sampling, bool masked) override;
  Status EnqueueDecode() override;
  Status SubmitDecodeMask(std::span<const uint64_t> allowed) override;
  Result<SampledToken> NextDecoded() override;
  void EndDecode() override;

  // CUDA graphs kept at once (the least recently used goes first): one per decode batch size
  // up to the program's sequences, at least kMinGraphs, at most kMaxGraphs. Under a server's
  // staggered arrivals the batch size wanders over 1..max_sequences; with fewer graphs than sizes
  // in use, the LRU recaptures one (every kernel of the step, an instantiation, and a stream
  // synchronization to evict) on every step whose size was evicted.
  static constexpr size_t kMinGraphs = 16, kMaxGraphs = 128;
  static size_t GraphCapacity(int64_t max_sequences);

 private:
  Status PlaceWeights(const std::vector<WeightView>& weights, const PlacementOptions& options);
  // Uploads GGUF blocks from the host and rewrites them into the placed layout, a slice of rows
  // at a time through `staging` (a device buffer of staging_bytes).
  Status PlaceBlocks(const WeightBinding& binding, const void* source, uint8_t* target, uint8_t* staging, int64_t staging_bytes);
  Status InitDecodeOnDevice();

  // The shape of the step being launched: what the launches read besides the graph.
  struct StepShape {
    int64_t tokens = 0, rows = 0, num_runs = 0;
    InputLayout layout{};
  };
  void SetShape(int64_t tokens, int64_t rows, int64_t num_runs);
  int32_t* Input(int64_t offset) const { return reinterpret_cast<int32_t*>(inputs_.get()) + offset; }

  DeviceTensor Resolve(const StepFunction& step, int32_t id) const;
  // Sampling buffer layout: the draw counter (8 bytes), the logprob (4), then the sampler's scratch.
  uint64_t* Counter() const { return reinterpret_cast<uint64_t*>(sampling_.get()); }
  void* SamplerScratch() const { return sampling_.get() + 256; }
  uint8_t* Scratch(const StepFunction& step, size_t op_index) const {
    return step.scratch_offsets[op_index] >= 0 ? arena_.get() + step.scratch_offsets[op_index] : nullptr;
  }
  KvPages PagesOf(int32_t cache_index) const;

  // cuda_launch.cpp: the kernels of one op (and the ops fused into it); returns how many ops it covered.
  Status Linear(const StepFunction& step, size_t op_index, const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& out);
  Result<size_t> Launch(const StepFunction& step, size_t op_index);
  Result<size_t> LaunchAttention(const StepFunction& step, size_t op_index);
  Status LaunchAll(const StepFunction& step);
  // Whether a step of this shape replays a CUDA graph: its launches must depend on nothing the
  // graph would freeze but (step, T). Decode batches (one token per sequence) qualify.
  bool Capturable(const StepFunction& step) const;
  // The step captured as a CUDA graph for the current shape, made on first use.
  Result<cudaGraphExec_t> GraphFor(const StepFunction& step);

  // KILN_CUDA_PROFILE=1: every launch between two events (no graphs), times summed by step and
  // kernel and printed when the model is dropped. For finding where a step's time goes.
  std::string ProfileKey(const StepFunction& step, size_t op_index, size_t covered) const;
  void PrintProfile() const;

  const Program& program_;
  // The MTP drafter's step and the columns of its hidden-state input (null and 0 without one).
  const StepFunction* draft_step_ = nullptr;
  int64_t hidden_columns_ = 0;
  cudaStream_t stream_ = nullptr;
  int sm_count_ = 0;
  bool use_graphs_ = true;
  bool profile_ = false;
  std::vector<cudaEvent_t> events_;
  struct ProfileEntry {
    double milliseconds = 0;
    int64_t calls = 0;
  };
  std::map<std::string, ProfileEntry> profile_entries_;
  DeviceBuffer arena_, weights_, inputs_;
  int32_t* staging_ = nullptr;  // pinned host twin of inputs_
  std::vector<DeviceBuffer> buffers_;
  std::vector<DeviceCache> caches_;
  std::vector<uint8_t*> weight_pointers_;
  int64_t cache_bytes_ = 0, weight_bytes_ = 0;
  std::unique_ptr<CublasLtGemm> gemm_;
  std::map<const StepFunction*, std::vector<Fusion>> fusions_;
  StepShape shape_;
  // Captured steps by (step, T), most recently used first.
  using GraphKey = std::pair<const StepFunction*, int64_t>;
  std::list<std::pair<GraphKey, cudaGraphExec_t>> graphs_;
  std::set<GraphKey> warmed_;  // shapes that ran once (captured from their second run on)
  size_t graph_capacity_ = kMinGraphs;
  // Decode on the device.
  int64_t vocab_ = 0;
  DeviceBuffer sampling_;
  SampledSlot* decoded_host_ = nullptr;    // pinned, mapped
  SampledSlot* decoded_device_ = nullptr;  // the same memory as the device sees it
  std::vector<cudaEvent_t> decoded_events_;
  const StepFunction* decode_step_ = nullptr;
  cudaGraphExec_t decode_graph_ = nullptr;  // null: launched op by op (graphs off)
  float* decode_logits_ = nullptr;
  DeviceSampling sampling_params_;  // cuda::DeviceSampling
  uint64_t staged_counter_ = 0;
  // Per-row sampling of a batched step: a draw counter and the sampled token of each row, in
  // pinned host memory the device reads and writes directly (Tmax rows).
  struct RowSlot {
    uint64_t counter;
    int32_t token;
    float logprob;
  };
  RowSlot* row_slots_host_ = nullptr;
  RowSlot* row_slots_device_ = nullptr;
  Status SampleRows(const DeviceTensor& logits, const StepIo& io);
  // Allowed-token masks: mask_slots_ bitsets of mask_words_ words on the device, staged through
  // their pinned twins. MaskLogits sets the disallowed logits of one row to -inf, through `slot`.
  DeviceBuffer masks_;
  uint64_t* mask_staging_ = nullptr;
  int64_t mask_words_ = 0, mask_slots_ = 0;
  Status MaskLogits(float* logits, const uint64_t* allowed, int64_t slot);
  Status EnqueueDraw();
  bool masked_ = false;         // the decode's draws wait for SubmitDecodeMask
  bool awaiting_mask_ = false;  // a masked step's model is enqueued, its draw is not
  int oldest_ = 0, in_flight_ = 0;
};

}  // namespace kiln::cuda
