#include "backends/cuda/cuda_placed_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>

#include "backends/cuda/cuda_device.h"
#include "backends/cuda/kernels/block_layout.h"
#include "backends/cuda/kernels/block_weights.cuh"

namespace kiln::cuda {

Error CudaFailure(cudaError_t status, const std::string& what) {
  return Error(status == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDeviceUnavailable,
               what + ": " + cudaGetErrorString(status));
}

Result<DeviceBuffer> Allocate(int64_t bytes, const std::string& what) {
  void* memory = nullptr;
  const cudaError_t status = cudaMalloc(&memory, static_cast<size_t>(std::max<int64_t>(bytes, 256)));
  if (status != cudaSuccess) return CudaFailure(status, "cannot allocate " + std::to_string(bytes) + " bytes of GPU memory for the " + what);
  return DeviceBuffer(static_cast<uint8_t*>(memory));
}

int64_t DraftHiddenColumns(const Program& program) {
  const StepFunction* draft = program.draft_step();
  if (draft == nullptr) return 0;
  const std::vector<int32_t> inputs = draft->graph.InputIds();
  if (inputs.size() <= static_cast<size_t>(StepInput::kHidden)) return 0;
  return draft->graph.value(inputs[static_cast<size_t>(StepInput::kHidden)]).shape.dims.back().value;
}

int64_t StepInputBytes(const Program& program) {
  const int64_t tmax = program.max_tokens;
  return InputLayout::For(tmax, tmax, program.max_sequences * program.block_table_stride(), DraftHiddenColumns(program)).end * 4;
}

namespace {

// The vocabulary of the decode step's logits; 0 without a decode step (nothing samples).
int64_t DecodeVocab(const Program& program) {
  const StepFunction* decode = program.FindStep("decode");
  return decode ? decode->graph.value(decode->output_value).shape.dims.back().value : 0;
}

// Allowed-token bitsets on the device: one per pipelined decode step in flight, or one per row of
// a batched step (a row per sequence when the device samples).
int64_t MaskSlots(const Program& program) {
  return std::max<int64_t>(PlacedModel::kMaxDecodeInFlight, program.max_sequences);
}

int64_t MaskWords(int64_t vocab) { return (vocab + 63) / 64; }

int64_t SamplingBytes(const Program& program) {
  const int64_t vocab = DecodeVocab(program);
  if (vocab == 0) return 0;
  return SampleScratchBytes(vocab) + 256 + MaskSlots(program) * MaskWords(vocab) * 8;
}

}  // namespace

int64_t OtherBytes(const Program& program) {
  return StepInputBytes(program) + CublasLtGemm::kWorkspaceBytes + SamplingBytes(program);
}

namespace {

// A weight as a matrix: rows of its last dimension (a 3-D expert tensor is experts x rows rows).
std::pair<int64_t, int64_t> RowsAndColumns(const WeightBinding& binding) {
  int64_t rows = 1;
  for (size_t axis = 0; axis + 1 < binding.shape.size(); ++axis) rows *= binding.shape[axis];
  return {rows, binding.shape.empty() ? 1 : binding.shape.back()};
}

// GGUF blocks are uploaded through a staging buffer of at most this many bytes.
constexpr int64_t kStagingBytes = int64_t{64} << 20;

}  // namespace

int64_t PlacedWeightBytes(const WeightBinding& binding) {
  const WeightType type = TypeOf(binding.dtype);
  if (!IsBlockWeight(type)) return binding.size_bytes();
  const auto [rows, k] = RowsAndColumns(binding);
  return PlacedBlockBytes(type, rows, k);
}

CudaPlacedModel::~CudaPlacedModel() {
  if (profile_) PrintProfile();
  if (stream_) cudaStreamSynchronize(stream_);
  for (cudaEvent_t event : decoded_events_) cudaEventDestroy(event);
  if (decoded_host_) cudaFreeHost(decoded_host_);
  if (row_slots_host_) cudaFreeHost(row_slots_host_);
  if (mask_staging_) cudaFreeHost(mask_staging_);
  if (staging_) cudaFreeHost(staging_);
  for (cudaEvent_t event : events_) cudaEventDestroy(event);
  for (auto& [key, graph] : graphs_) cudaGraphExecDestroy(graph);
  if (stream_) cudaStreamDestroy(stream_);
}

Status CudaPlacedModel::Init(const std::vector<WeightView>& weights, const PlacementOptions& options) {
  TRY(VerifyProgram(program_, program_.arena_bytes));
  for (const StepFunction& step : program_.steps) {
    if (step.guard_bytes > 0) return Error(ErrorCode::kUnsupported, "guard mode runs on the CPU backend (--device cpu)");
    fusions_[&step] = FindFusions(step);
  }
  TRY_ASSIGN(CudaDeviceInfo device, ProbeCudaDevice(0));
  sm_count_ = device.multiprocessors;
  if (const char* graphs = std::getenv("KILN_CUDA_GRAPHS"); graphs && std::string(graphs) == "0") use_graphs_ = false;
  graph_capacity_ = GraphCapacity(program_.max_sequences);
  if (const char* profile = std::getenv("KILN_CUDA_PROFILE"); profile && std::string(profile) == "1") profile_ = true;
  if (cudaError_t s = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking); s != cudaSuccess) return CudaFailure(s, "cannot create a stream");
  draft_step_ = program_.draft_step();
  hidden_columns_ = DraftHiddenColumns(program_);
  TRY_ASSIGN(arena_, Allocate(program_.arena_bytes, "activation arena"));
  // The KV block pool: per layer, K and V of blocks(group) * block_size rows.
  const int64_t block = program_.kv_block_size;
  for (const CacheLayout& layout : program_.caches) {
    if (layout.dtype != DType::kF32 && layout.dtype != DType::kBF16) {
      return Error(ErrorCode::kUnsupported, std::string("the CUDA backend keeps the KV cache in f32 or bf16, the program asks for ") +
                                                DTypeName(layout.dtype));
    }
    const int64_t rows = options.kv_pool.blocks[static_cast<size_t>(layout.group)] * block;
    // The kernels index pool rows in 32 bits.
    if (rows >= std::numeric_limits<int32_t>::max()) {
      return Error(ErrorCode::kInvalidArgument, "KV pool of " + std::to_string(rows) + " rows per layer exceeds the CUDA backend's 2^31");
    }
    TRY_ASSIGN(DeviceBuffer k, Allocate(rows * layout.row_bytes(), "KV block pool"));
    TRY_ASSIGN(DeviceBuffer v, Allocate(rows * layout.row_bytes(), "KV block pool"));
    DeviceCache cache{k.get(), v.get(), TypeOf(layout.dtype), {}};
    cache.pages.table_stride = program_.block_table_stride();
    cache.pages.table_offset = program_.BlockTableOffset(layout.group);
    cache.pages.block_size = static_cast<int32_t>(block);
    cache.pages.capacity = layout.capacity_positions;
    cache.pages.ring = layout.window > 0;
    caches_.push_back(cache);
    cache_bytes_ += 2 * rows * layout.row_bytes();
    buffers_.push_back(std::move(k));
    buffers_.push_back(std::move(v));
  }
  TRY(PlaceWeights(weights, options));
  TRY_ASSIGN(inputs_, Allocate(StepInputBytes(program_), "step inputs"));
  void* staging = nullptr;
  if (cudaError_t s = cudaHostAlloc(&staging, static_cast<size_t>(StepInputBytes(program_)), cudaHostAllocDefault); s != cudaSuccess) {
    return CudaFailure(s, "cannot allocate pinned memory for the step inputs");
  }
  staging_ = static_cast<int32_t*>(staging);
  TRY_ASSIGN(gemm_, CublasLtGemm::Create());
  TRY(InitDecodeOnDevice());
  return Status::Ok();
}

// Weights: one allocation, each tensor 256-byte aligned, copied once (or created on the device).
// Block formats are rewritten into the placed layout on the way (PlaceBlocks).
Status CudaPlacedModel::PlaceWeights(const std::vector<WeightView>& weights, const PlacementOptions& options) {
  std::vector<int64_t> offsets;
  int64_t largest_blocks = 0;
  for (const WeightBinding& binding : program_.weights) {
    offsets.push_back(weight_bytes_);
    weight_bytes_ += AlignUp(PlacedWeightBytes(binding), kWeightAlignment);
    if (IsBlockWeight(TypeOf(binding.dtype))) largest_blocks = std::max(largest_blocks, binding.size_bytes());
  }
  TRY_ASSIGN(weights_, Allocate(weight_bytes_, "weights"));
  DeviceBuffer staging;
  const int64_t staging_bytes = std::min(largest_blocks, kStagingBytes);
  if (largest_blocks > 0 && !options.random_weights) {
    TRY_ASSIGN(staging, Allocate(staging_bytes, "staging of block-format weights"));
  }
  for (size_t i = 0; i < program_.weights.size(); ++i) {
    const WeightBinding& binding = program_.weights[i];
    uint8_t* target = weights_.get() + offsets[i];
    weight_pointers_.push_back(target);
    const WeightType type = TypeOf(binding.dtype);
    const auto [rows, columns] = RowsAndColumns(binding);
    cudaError_t s = cudaSuccess;
    if (options.random_weights) {
      // Vectors (norm scales, layer scalars) near 1; matrices with unit-variance products.
      const bool vector = binding.shape.size() <= 1;
      const float spread = vector ? 0.1f : std::sqrt(3.0f / static_cast<float>(columns));
      if (IsBlockWeight(type)) {
        s = LaunchRandomBlocks(target, type, rows, columns, options.random_seed + i, spread, stream_);
      } else {
        const int64_t count = binding.size_bytes() / static_cast<int64_t>(DTypeSize(binding.dtype));
        s = LaunchRandomFill(target, type, count, options.random_seed + i, vector ? 1.0f : 0.0f, spread, stream_);
      }
    } else if (IsBlockWeight(type)) {
      TRY(PlaceBlocks(binding, weights[i].data, target, staging.get(), staging_bytes));
    } else {
      s = cudaMemcpy(target, weights[i].data, static_cast<size_t>(weights[i].size_bytes), cudaMemcpyHostToDevice);
    }
    if (s != cudaSuccess) return CudaFailure(s, "cannot place weight '" + binding.tensor_name + "'");
  }
  // The staging buffer is freed on return: the copies and rewrites that read it finish first.
  if (cudaError_t s = cudaStreamSynchronize(stream_); s != cudaSuccess) return CudaFailure(s, "cannot place the weights");
  return Status::Ok();
}

Status CudaPlacedModel::PlaceBlocks(const WeightBinding& binding, const void* source, uint8_t* target, uint8_t* staging,
                                    int64_t staging_bytes) {
  const WeightType type = TypeOf(binding.dtype);
  const auto [rows, k] = RowsAndColumns(binding);
  const int64_t row_bytes = binding.size_bytes() / std::max<int64_t>(rows, 1);
  // Whole rows per slice; a row larger than the staging buffer cannot occur (it holds the
  // largest weight, or 64 MiB, and rows of Gemma 4 weights are a few KiB).
  const int64_t slice = std::max<int64_t>(staging_bytes / std::max<int64_t>(row_bytes, 1), 1);
  if (row_bytes > staging_bytes) return Error(ErrorCode::kInternal, "a row of '" + binding.tensor_name + "' exceeds the staging buffer");
  const std::string what = "cannot place weight '" + binding.tensor_name + "'";
  for (int64_t first = 0; first < rows; first += slice) {
    const int64_t count = std::min(slice, rows - first);
    // In stream order: the previous slice's rewrite has read the staging buffer before this copy.
    if (cudaError_t s = cudaMemcpyAsync(staging, static_cast<const uint8_t*>(source) + first * row_bytes, static_cast<size_t>(count * row_bytes),
                                        cudaMemcpyHostToDevice, stream_);
        s != cudaSuccess) {
      return CudaFailure(s, what);
    }
    if (cudaError_t s = LaunchRepackBlocks(staging, type, first, count, rows, k, target, stream_); s != cudaSuccess) return CudaFailure(s, what);
  }
  return Status::Ok();
}

void CudaPlacedModel::SetShape(int64_t tokens, int64_t rows, int64_t num_runs) {
  shape_.tokens = tokens;
  shape_.rows = rows;
  shape_.num_runs = num_runs;
  shape_.layout = InputLayout::For(tokens, rows, program_.max_sequences * program_.block_table_stride(), hidden_columns_);
}

DeviceTensor CudaPlacedModel::Resolve(const StepFunction& step, int32_t id) const {
  DeviceTensor tensor;
  if (id < 0) return tensor;
  const Value& value = step.graph.value(id);
  const Placement& placement = step.placements[static_cast<size_t>(id)];
  tensor.dtype = value.dtype;
  tensor.rows = value.shape.dims.empty() ? 1 : value.shape.Extent(0, shape_.tokens, shape_.rows);
  tensor.columns = 1;
  for (size_t axis = 1; axis < value.shape.dims.size(); ++axis) tensor.columns *= value.shape.Extent(axis, shape_.tokens, shape_.rows);
  switch (placement.where) {
    case Placement::Where::kInput: {
      const InputLayout& l = shape_.layout;
      const int64_t offsets[] = {l.token_ids, l.positions, l.sequences, l.logit_rows, l.read_positions, l.hidden};
      tensor.data = Input(offsets[std::clamp<int32_t>(placement.index, 0, 5)]);
      break;
    }
    case Placement::Where::kWeight: tensor.data = weight_pointers_[static_cast<size_t>(placement.index)]; break;
    case Placement::Where::kArena: tensor.data = arena_.get() + placement.offset_bytes; break;
    case Placement::Where::kNone: break;
  }
  return tensor;
}

KvPages CudaPlacedModel::PagesOf(int32_t cache_index) const {
  KvPages pages = caches_[static_cast<size_t>(cache_index)].pages;
  pages.block_tables = Input(shape_.layout.block_tables);
  return pages;
}

bool CudaPlacedModel::Capturable(const StepFunction& /*step*/) const {
  // Every token its own run and row: then the launches depend on T alone (the runs count, the
  // rows gathered and the input offsets all follow from it).
  return use_graphs_ && !profile_ && shape_.num_runs == shape_.tokens && shape_.rows == shape_.tokens;
}

size_t CudaPlacedModel::GraphCapacity(int64_t max_sequences) {
  return std::clamp<size_t>(static_cast<size_t>(std::max<int64_t>(max_sequences, 0)), kMinGraphs, kMaxGraphs);
}

Result<cudaGraphExec_t> CudaPlacedModel::GraphFor(const StepFunction& step) {
  const GraphKey key{&step, shape_.tokens};
  for (auto it = graphs_.begin(); it != graphs_.end(); ++it) {
    if (it->first == key) {
      graphs_.splice(graphs_.begin(), graphs_, it);
      return graphs_.front().second;
    }
  }
  const std::string what = "cannot capture step '" + step.name + "' at " + std::to_string(shape_.tokens) + " tokens";
  cudaGraph_t graph = nullptr;
  if (cudaError_t s = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal); s != cudaSuccess) return CudaFailure(s, what);
  Status launched = LaunchAll(step);
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  if (!launched.ok()) {
    if (graph) cudaGraphDestroy(graph);
    return launched.error();
  }
  if (ended != cudaSuccess) return CudaFailure(ended, what);
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (instantiated != cudaSuccess) return CudaFailure(instantiated, what);
  if (graphs_.size() >= graph_capacity_) {
    // Replays of the evicted graph were enqueued on this stream: let them finish first.
    cudaStreamSynchronize(stream_);
    cudaGraphExecDestroy(graphs_.back().second);
    graphs_.pop_back();
  }
  graphs_.emplace_front(key, exec);
  return exec;
}

Status CudaPlacedModel::RunStep(const StepFunction& step, const StepIo& io) {
  const int64_t tokens = static_cast<int64_t>(io.token_ids.size()), rows = static_cast<int64_t>(io.logit_rows.size());
  const int64_t stride = program_.block_table_stride(), sequences = io.num_sequences;
  if (tokens < 1 || tokens > step.max_tokens || rows < 1 || rows > step.max_rows || sequences < 1 ||
      sequences > program_.max_sequences || static_cast<int64_t>(io.positions.size()) != tokens ||
      static_cast<int64_t>(io.sequences.size()) != tokens || static_cast<int64_t>(io.block_tables.size()) < sequences * stride) {
    return Error(ErrorCode::kInvalidArgument, "step '" + step.name + "' of " + std::to_string(tokens) + " tokens, " +
                                                  std::to_string(rows) + " rows and " + std::to_string(sequences) +
                                                  " sequences is outside its bounds or its inputs disagree");
  }
  // Runs: maximal spans of one sequence at consecutive positions (the prefill attention's tiles).
  const int64_t hidden_columns = hidden_columns_;
  const bool drafter = &step == draft_step_;
  if (drafter && (static_cast<int64_t>(io.read_positions.size()) != tokens || static_cast<int64_t>(io.hidden.size()) != tokens * hidden_columns)) {
    return Error(ErrorCode::kInvalidArgument, "drafter step '" + step.name + "' needs " + std::to_string(tokens) + " read positions and " +
                                                  std::to_string(tokens * hidden_columns) + " hidden-state floats");
  }
  const InputLayout layout = InputLayout::For(tokens, rows, sequences * stride, hidden_columns);
  int32_t* runs = staging_ + layout.runs;
  int64_t num_runs = 0;
  runs[num_runs++] = 0;
  for (int64_t t = 1; t < tokens; ++t) {
    const size_t i = static_cast<size_t>(t);
    if (io.sequences[i] != io.sequences[i - 1] || io.positions[i] != io.positions[i - 1] + 1) runs[num_runs++] = static_cast<int32_t>(t);
  }
  runs[num_runs] = static_cast<int32_t>(tokens);
  SetShape(tokens, rows, num_runs);
  std::memcpy(staging_ + layout.token_ids, io.token_ids.data(), static_cast<size_t>(tokens) * 4);
  std::memcpy(staging_ + layout.positions, io.positions.data(), static_cast<size_t>(tokens) * 4);
  std::memcpy(staging_ + layout.sequences, io.sequences.data(), static_cast<size_t>(tokens) * 4);
  std::memcpy(staging_ + layout.logit_rows, io.logit_rows.data(), static_cast<size_t>(rows) * 4);
  if (drafter) {
    std::memcpy(staging_ + layout.read_positions, io.read_positions.data(), static_cast<size_t>(tokens) * 4);
    std::memcpy(staging_ + layout.hidden, io.hidden.data(), static_cast<size_t>(tokens * hidden_columns) * 4);
  }
  std::memcpy(staging_ + layout.block_tables, io.block_tables.data(), static_cast<size_t>(sequences * stride) * 4);
  const size_t bytes = static_cast<size_t>(layout.block_tables + sequences * stride) * 4;
  if (cudaError_t s = cudaMemcpyAsync(inputs_.get(), staging_, bytes, cudaMemcpyHostToDevice, stream_); s != cudaSuccess) {
    return CudaFailure(s, "cannot copy the inputs of step '" + step.name + "'");
  }
  // A decode batch is the same launches at every position (positions, sequences and block
  // tables are read on the device), so it is captured once per (step, T) as a CUDA graph and
  // replayed: one launch per step.
  // The first step of a shape runs op by op: libraries pick their algorithms outside a capture.
  bool replayed = false;
  if (Capturable(step) && !warmed_.insert({&step, tokens}).second) {
    Result<cudaGraphExec_t> graph = GraphFor(step);
    if (graph.has_value()) {
      if (cudaError_t s = cudaGraphLaunch(*graph, stream_); s != cudaSuccess) return CudaFailure(s, "step '" + step.name + "' failed");
      replayed = true;
    }
    // else: a launch the capture refused; the step runs op by op.
  }
  if (!replayed) TRY(LaunchAll(step));
  const DeviceTensor logits = Resolve(step, step.output_value);
  if (io.hidden_out != nullptr && step.hidden_value >= 0) {
    const DeviceTensor hidden = Resolve(step, step.hidden_value);
    cudaMemcpyAsync(io.hidden_out, hidden.data, static_cast<size_t>(hidden.rows * hidden.columns) * 4, cudaMemcpyDeviceToHost, stream_);
  }
  if (!io.sample_rows.empty()) return SampleRows(logits, io);
  cudaMemcpyAsync(io.logits, logits.data, static_cast<size_t>(logits.rows * logits.columns) * 4, cudaMemcpyDeviceToHost, stream_);
  if (cudaError_t s = cudaStreamSynchronize(stream_); s != cudaSuccess) return CudaFailure(s, "step '" + step.name + "' failed");
  return Status::Ok();
}

// Each row drawn by the device sampler after the step, in order on the step's stream; only the
// tokens come back (8 bytes a row instead of the vocabulary's logits).
Status CudaPlacedModel::SampleRows(const DeviceTensor& logits, const StepIo& io) {
  const int64_t rows = logits.rows;
  if (!row_slots_host_ || static_cast<int64_t>(io.sample_rows.size()) != rows || !io.sampled) {
    return Error(ErrorCode::kInvalidArgument, "device sampling of " + std::to_string(io.sample_rows.size()) + " rows for a step of " +
                                                  std::to_string(rows) + " logit rows");
  }
  for (int64_t r = 0; r < rows; ++r) row_slots_host_[r].counter = io.sample_rows[static_cast<size_t>(r)].draw;
  for (int64_t r = 0; r < rows; ++r) {
    if (const uint64_t* allowed = io.sample_rows[static_cast<size_t>(r)].allowed) {
      if (r >= mask_slots_) {
        return Error(ErrorCode::kInvalidArgument, "allowed-token masks for " + std::to_string(rows) + " rows; at most " +
                                                      std::to_string(mask_slots_) + " rows may be masked");
      }
      TRY(MaskLogits(logits.f32() + r * logits.columns, allowed, r));
    }
    const kiln::DeviceSampling& o = io.sample_rows[static_cast<size_t>(r)].options;
    DeviceSampling params;
    params.temperature = o.temperature;
    params.top_k = static_cast<int32_t>(std::min<int64_t>(o.top_k, INT32_MAX));
    params.top_p = o.top_p;
    params.min_p = o.min_p;
    params.seed = o.seed;
    RowSlot* slot = row_slots_device_ + r;
    if (cudaError_t s = LaunchSample(logits.f32() + r * logits.columns, logits.columns, params, &slot->counter, &slot->token,
                                     &slot->logprob, nullptr, SamplerScratch(), stream_);
        s != cudaSuccess) {
      return CudaFailure(s, "cannot sample row " + std::to_string(r));
    }
  }
  if (cudaError_t s = cudaStreamSynchronize(stream_); s != cudaSuccess) return CudaFailure(s, "sampling failed");
  for (int64_t r = 0; r < rows; ++r) io.sampled[r] = {row_slots_host_[r].token, row_slots_host_[r].logprob};
  return Status::Ok();
}

Status CudaPlacedModel::CopyBlocks(int32_t group, std::span<const int32_t> src, std::span<const int32_t> dst) {
  if (src.size() != dst.size() || group < 0 || static_cast<size_t>(group) >= program_.kv_groups.size()) {
    return Error(ErrorCode::kInvalidArgument, "block copy of " + std::to_string(src.size()) + " blocks to " + std::to_string(dst.size()) +
                                                  " in group " + std::to_string(group));
  }
  // Queued on the step stream, so in order with the steps before and after.
  const int64_t block = program_.kv_block_size;
  for (size_t c = 0; c < program_.caches.size(); ++c) {
    const CacheLayout& layout = program_.caches[c];
    if (layout.group != group) continue;
    const int64_t bytes = block * layout.row_bytes();
    for (size_t i = 0; i < src.size(); ++i) {
      for (void* base : {caches_[c].k, caches_[c].v}) {
        uint8_t* pool = static_cast<uint8_t*>(base);
        if (cudaError_t s = cudaMemcpyAsync(pool + dst[i] * bytes, pool + src[i] * bytes, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, stream_);
            s != cudaSuccess) {
          return CudaFailure(s, "cannot copy KV blocks");
        }
      }
    }
  }
  return Status::Ok();
}

// Device sampling state: the sampler's scratch and counter, and a ring of mapped host slots
// with one event each, where finished steps leave their tokens.
Status CudaPlacedModel::InitDecodeOnDevice() {
  vocab_ = DecodeVocab(program_);
  if (vocab_ == 0) return Status::Ok();
  TRY_ASSIGN(sampling_, Allocate(SampleScratchBytes(vocab_) + 256, "sampling scratch"));
  mask_words_ = MaskWords(vocab_);
  mask_slots_ = MaskSlots(program_);
  TRY_ASSIGN(masks_, Allocate(mask_slots_ * mask_words_ * 8, "allowed-token masks"));
  void* mask_host = nullptr;
  if (cudaError_t s = cudaHostAlloc(&mask_host, static_cast<size_t>(mask_slots_ * mask_words_ * 8), cudaHostAllocDefault); s != cudaSuccess) {
    return CudaFailure(s, "cannot allocate pinned memory for allowed-token masks");
  }
  mask_staging_ = static_cast<uint64_t*>(mask_host);
  void* host = nullptr;
  if (cudaError_t s = cudaHostAlloc(&host, sizeof(SampledSlot) * kMaxDecodeInFlight, cudaHostAllocMapped); s != cudaSuccess) {
    return CudaFailure(s, "cannot allocate pinned memory for sampled tokens");
  }
  decoded_host_ = static_cast<SampledSlot*>(host);
  void* device = nullptr;
  if (cudaError_t s = cudaHostGetDevicePointer(&device, host, 0); s != cudaSuccess) return CudaFailure(s, "cannot map pinned memory");
  decoded_device_ = static_cast<SampledSlot*>(device);
  void* rows_host = nullptr;
  if (cudaError_t s = cudaHostAlloc(&rows_host, sizeof(RowSlot) * static_cast<size_t>(program_.max_tokens), cudaHostAllocMapped); s != cudaSuccess) {
    return CudaFailure(s, "cannot allocate pinned memory for sampled rows");
  }
  row_slots_host_ = static_cast<RowSlot*>(rows_host);
  void* rows_device = nullptr;
  if (cudaError_t s = cudaHostGetDevicePointer(&rows_device, rows_host, 0); s != cudaSuccess) return CudaFailure(s, "cannot map pinned memory");
  row_slots_device_ = static_cast<RowSlot*>(rows_device);
  for (int i = 0; i < kMaxDecodeInFlight; ++i) {
    cudaEvent_t event = nullptr;
    if (cudaError_t s = cudaEventCreateWithFlags(&event, cudaEventDisableTiming); s != cudaSuccess) return CudaFailure(s, "cannot create an event");
    decoded_events_.push_back(event);
  }
  return Status::Ok();
}

Status CudaPlacedModel::MaskLogits(float* logits, const uint64_t* allowed, int64_t slot) {
  // Staged in pinned memory, so the copy is asynchronous; a slot is written again only after the
  // draw that read it has finished (the host has seen its token, or the step has synchronized).
  const size_t bytes = static_cast<size_t>(mask_words_) * 8;
  uint64_t* host = mask_staging_ + slot * mask_words_;
  uint64_t* device = reinterpret_cast<uint64_t*>(masks_.get()) + slot * mask_words_;
  std::memcpy(host, allowed, bytes);
  cudaError_t s = cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_);
  if (s == cudaSuccess) s = LaunchMaskLogits(logits, vocab_, device, stream_);
  if (s != cudaSuccess) return CudaFailure(s, "cannot apply the allowed-token mask");
  return Status::Ok();
}

Status CudaPlacedModel::BeginDecode(const StepFunction& step, int32_t token, int64_t position, std::span<const int32_t> block_table,
                                    const kiln::DeviceSampling& sampling, bool masked) {
  if (!sampling_) return Error(ErrorCode::kUnsupported, "the program has no decode step");
  const int64_t stride = program_.block_table_stride();
  if (static_cast<int64_t>(block_table.size()) != stride) {
    return Error(ErrorCode::kInvalidArgument, "a block table row holds " + std::to_string(stride) + " entries, " +
                                                  std::to_string(block_table.size()) + " given");
  }
  // One sequence, one token: the device keeps its own copy of the block table row, and the
  // sampler advances the token and the position in place.
  SetShape(1, 1, 1);
  const InputLayout& layout = shape_.layout;
  staging_[layout.token_ids] = token;
  staging_[layout.positions] = static_cast<int32_t>(position);
  staging_[layout.sequences] = 0;
  staging_[layout.logit_rows] = 0;
  staging_[layout.runs] = 0;
  staging_[layout.runs + 1] = 1;
  std::copy(block_table.begin(), block_table.end(), staging_ + layout.block_tables);
  // The draw of the token fed at position p uses counter p: a seed gives the same tokens
  // whatever the pipeline depth.
  staged_counter_ = static_cast<uint64_t>(position);
  cudaMemcpyAsync(inputs_.get(), staging_, static_cast<size_t>(layout.block_tables + stride) * 4, cudaMemcpyHostToDevice, stream_);
  cudaMemcpyAsync(Counter(), &staged_counter_, 8, cudaMemcpyHostToDevice, stream_);
  if (cudaError_t s = cudaStreamSynchronize(stream_); s != cudaSuccess) return CudaFailure(s, "cannot start decoding");
  decode_step_ = &step;
  decode_graph_ = nullptr;
  if (Capturable(step)) {
    Result<cudaGraphExec_t> graph = GraphFor(step);
    if (graph.has_value()) decode_graph_ = *graph;
  }
  decode_logits_ = Resolve(step, step.output_value).f32();
  sampling_params_.temperature = sampling.temperature;
  sampling_params_.top_k = static_cast<int32_t>(std::min<int64_t>(sampling.top_k, INT32_MAX));
  sampling_params_.top_p = sampling.top_p;
  sampling_params_.min_p = sampling.min_p;
  sampling_params_.seed = sampling.seed;
  oldest_ = 0;
  in_flight_ = 0;
  masked_ = masked;
  awaiting_mask_ = false;
  return Status::Ok();
}

Status CudaPlacedModel::EnqueueDecode() {
  if (!decode_step_) return Error(ErrorCode::kInternal, "EnqueueDecode before BeginDecode");
  if (in_flight_ == kMaxDecodeInFlight) return Error(ErrorCode::kInternal, "too many decode steps in flight");
  if (awaiting_mask_) return Error(ErrorCode::kInternal, "a masked decode step was enqueued before the mask of the one before it");
  if (decode_graph_) {
    if (cudaError_t s = cudaGraphLaunch(decode_graph_, stream_); s != cudaSuccess) return CudaFailure(s, "cannot enqueue a decode step");
  } else {
    TRY(LaunchAll(*decode_step_));
  }
  if (masked_) {
    awaiting_mask_ = true;
    return Status::Ok();
  }
  return EnqueueDraw();
}

Status CudaPlacedModel::SubmitDecodeMask(std::span<const uint64_t> allowed) {
  if (!masked_ || !awaiting_mask_) return Error(ErrorCode::kInternal, "a mask without a masked decode step waiting for it");
  if (static_cast<int64_t>(allowed.size()) != mask_words_) {
    return Error(ErrorCode::kInvalidArgument, "an allowed-token mask of " + std::to_string(allowed.size()) + " words; the vocabulary of " +
                                                  std::to_string(vocab_) + " needs " + std::to_string(mask_words_));
  }
  awaiting_mask_ = false;
  TRY(MaskLogits(decode_logits_, allowed.data(), (oldest_ + in_flight_) % kMaxDecodeInFlight));
  return EnqueueDraw();
}

// The draw of the step just enqueued: it feeds its token and position to the next step on the
// device, and leaves them in the next slot of the mapped ring for NextDecoded.
Status CudaPlacedModel::EnqueueDraw() {
  const int slot = (oldest_ + in_flight_) % kMaxDecodeInFlight;
  int32_t* token = Input(shape_.layout.token_ids);
  int32_t* position = Input(shape_.layout.positions);
  float* logprob = reinterpret_cast<float*>(Counter() + 1);
  cudaError_t s = LaunchSample(decode_logits_, vocab_, sampling_params_, Counter(), token, logprob, position, SamplerScratch(), stream_);
  if (s == cudaSuccess) s = LaunchRecordSample(token, logprob, decoded_device_ + slot, stream_);
  if (s == cudaSuccess) s = cudaEventRecord(decoded_events_[static_cast<size_t>(slot)], stream_);
  if (s != cudaSuccess) return CudaFailure(s, "cannot enqueue a decode step");
  ++in_flight_;
  return Status::Ok();
}

Result<SampledToken> CudaPlacedModel::NextDecoded() {
  if (in_flight_ == 0) return Error(ErrorCode::kInternal, "no decode step in flight");
  if (cudaError_t s = cudaEventSynchronize(decoded_events_[static_cast<size_t>(oldest_)]); s != cudaSuccess) return CudaFailure(s, "decode step failed");
  const SampledSlot slot = decoded_host_[oldest_];
  oldest_ = (oldest_ + 1) % kMaxDecodeInFlight;
  --in_flight_;
  return SampledToken{slot.id, slot.logprob};
}

void CudaPlacedModel::EndDecode() {
  cudaStreamSynchronize(stream_);
  in_flight_ = 0;
  awaiting_mask_ = false;
  decode_graph_ = nullptr;
  decode_step_ = nullptr;
}

}  // namespace kiln::cuda
