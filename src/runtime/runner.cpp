#include "runtime/runner.h"

#include <algorithm>

#include "compiler/plan_report.h"

namespace kiln {

namespace {

// Refuses, before anything is allocated, a model whose planned memory exceeds what the backend
// can hold: weights (on the CPU, read in place from the mapped files, which must then stay in
// memory too), the KV block pool and the arena. A long --ctx is the usual cause, and on the CPU
// its pages would only fail (or swap) once a long sequence touched them.
Status CheckPlanFits(const Program& program, const Backend& backend, const KvPoolSize& pool, const std::vector<WeightView>& weights) {
  const int64_t capacity = backend.MemoryCapacity();
  if (capacity <= 0) return Status::Ok();
  const MemoryReport planned = backend.PlanMemory(program, pool);
  int64_t mapped = 0;
  if (planned.weight_bytes == 0) {
    for (const WeightView& weight : weights) mapped += weight.size_bytes;
  }
  const int64_t needed = planned.total() + mapped;
  if (needed <= capacity) return Status::Ok();
  return Error(ErrorCode::kOutOfMemory,
               "the model needs " + FormatBytes(needed) + " on " + backend.target_name() + " (KV cache " + FormatBytes(planned.cache_bytes) +
                   " for " + std::to_string(program.max_sequences) + (program.max_sequences == 1 ? " sequence" : " sequences") + " of up to " +
                   std::to_string(program.max_context) + " positions, weights " + FormatBytes(planned.weight_bytes + mapped) + ", working memory " +
                   FormatBytes(planned.arena_bytes + planned.other_bytes) + ") but " + FormatBytes(capacity) +
                   (backend.target_name().rfind("cuda", 0) == 0 ? " of the GPU's memory is free" : " is all the memory this machine has") +
                   "; lower the context (--ctx) or the sequences per step (--parallel)");
}

}  // namespace

Result<std::unique_ptr<Runner>> Runner::Create(const Program& program, Backend& backend, std::vector<WeightView> weights,
                                               const RunnerOptions& options) {
  if (weights.size() != program.weights.size()) {
    return Error(ErrorCode::kInvalidArgument, "program reads " + std::to_string(program.weights.size()) +
                                                  " weights, " + std::to_string(weights.size()) + " given");
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    const WeightBinding& binding = program.weights[i];
    if (weights[i].dtype != binding.dtype || weights[i].size_bytes != binding.size_bytes() ||
        (!weights[i].data && !options.random_weights)) {
      return Error(ErrorCode::kInvalidArgument, "weight '" + binding.tensor_name + "' differs from the program's");
    }
  }
  if (options.random_weights && !backend.SupportsRandomWeights()) {
    return Error(ErrorCode::kUnsupported, "the " + backend.target_name() + " backend cannot create random weights");
  }
  std::unique_ptr<Runner> runner(new Runner());
  runner->program_ = &program;
  runner->decode_ = program.FindStep("decode");
  runner->prefill_ = program.FindStep("prefill");
  runner->score_ = program.FindStep("score");
  if (!runner->decode_ || !runner->prefill_) return Error(ErrorCode::kPlanInvalid, "program has no decode or prefill step");
  // The logits output's columns are the vocabulary.
  runner->vocab_size_ = runner->decode_->graph.value(runner->decode_->output_value).shape.dims.back().value;
  if ((runner->draft_ = program.draft_step()) != nullptr) {
    const std::vector<int32_t> inputs = runner->draft_->graph.InputIds();
    if (inputs.size() != static_cast<size_t>(StepInput::kCount) || runner->decode_->hidden_value < 0 || runner->prefill_->hidden_value < 0 ||
        (runner->score_ && runner->score_->hidden_value < 0) || runner->draft_->hidden_value < 0) {
      return Error(ErrorCode::kPlanInvalid, "program has a draft step, but its steps lack the hidden-state inputs and outputs it needs");
    }
    runner->hidden_size_ = runner->draft_->graph.value(inputs[static_cast<size_t>(StepInput::kHidden)]).shape.dims.back().value;
    if (runner->decode_->graph.value(runner->decode_->hidden_value).shape.dims.back().value != runner->hidden_size_) {
      return Error(ErrorCode::kPlanInvalid, "the draft step's hidden state differs in width from the target's");
    }
  }

  KvPoolSize pool = options.kv_pool.blocks.empty() ? KvPoolSize::ForSequences(program, program.max_sequences) : options.kv_pool;
  if (pool.blocks.size() != program.kv_groups.size()) {
    return Error(ErrorCode::kInvalidArgument, "KV pool sized for " + std::to_string(pool.blocks.size()) + " groups, the program has " +
                                                  std::to_string(program.kv_groups.size()));
  }
  for (size_t g = 0; g < pool.blocks.size(); ++g) {
    // A pool that cannot hold one sequence's first chunk would stall every request forever.
    const int64_t least = std::min(program.kv_groups[g].blocks_per_sequence,
                                   (program.max_tokens + program.kv_block_size - 1) / program.kv_block_size);
    if (pool.blocks[g] < least || pool.blocks[g] > (int64_t{1} << 30)) {
      return Error(ErrorCode::kInvalidArgument, "KV pool of " + std::to_string(pool.blocks[g]) + " blocks in group " +
                                                    std::to_string(g) + " cannot hold one chunk of " +
                                                    std::to_string(program.max_tokens) + " tokens (" + std::to_string(least) +
                                                    " blocks); give the pool more memory");
    }
  }
  TRY(CheckPlanFits(program, backend, pool, weights));
  PlacementOptions placement;
  placement.num_threads = options.num_threads;
  placement.kv_pool = pool;
  placement.random_weights = options.random_weights;
  placement.random_seed = options.random_seed;
  TRY_ASSIGN(runner->placed_, backend.PlaceModel(program, std::move(weights), placement));
  runner->pool_ = std::make_unique<KvBlockPool>(program, pool.blocks);
  const size_t tmax = static_cast<size_t>(program.max_tokens);
  runner->token_ids_.resize(tmax);
  runner->positions_.resize(tmax);
  runner->sequences_.resize(tmax);
  runner->logit_rows_.resize(tmax);
  runner->read_positions_.resize(tmax);
  runner->block_tables_.resize(static_cast<size_t>(program.max_sequences * program.block_table_stride()));
  return runner;
}

int64_t Runner::LogitRows(std::span<const BatchEntry> batch) {
  int64_t rows = 0;
  for (const BatchEntry& entry : batch) rows += entry.all_logits ? static_cast<int64_t>(entry.tokens.size()) : 1;
  return rows;
}

Status Runner::Validate(std::span<const BatchEntry> batch, int64_t tokens) const {
  const Program& program = *program_;
  if (batch.empty()) return Error(ErrorCode::kInvalidArgument, "a step needs at least one sequence");
  if (static_cast<int64_t>(batch.size()) > program.max_sequences) {
    return Error(ErrorCode::kInvalidArgument, "step of " + std::to_string(batch.size()) + " sequences exceeds the bound of " +
                                                  std::to_string(program.max_sequences) + " the program was compiled for (--parallel)");
  }
  if (tokens > program.max_tokens) {
    return Error(ErrorCode::kInvalidArgument, "step of " + std::to_string(tokens) + " tokens exceeds the chunk bound " +
                                                  std::to_string(program.max_tokens) + "; split the prompt into chunks");
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchEntry& entry = batch[i];
    if (!entry.sequence || &entry.sequence->pool() != pool_.get()) {
      return Error(ErrorCode::kInvalidArgument, "batch entry " + std::to_string(i) + " is not a sequence of this model");
    }
    for (size_t j = 0; j < i; ++j) {
      if (batch[j].sequence == entry.sequence) return Error(ErrorCode::kInvalidArgument, "a sequence appears twice in one step");
    }
    if (entry.tokens.empty()) return Error(ErrorCode::kInvalidArgument, "a step needs at least one token per sequence");
    const int64_t end = entry.sequence->length() + static_cast<int64_t>(entry.tokens.size());
    if (end > program.max_context) {
      return Error(ErrorCode::kOutOfRange, "sequence of " + std::to_string(end) + " tokens exceeds the context of " +
                                               std::to_string(program.max_context) + " tokens; raise --ctx or shorten the prompt");
    }
    for (int32_t id : entry.tokens) {
      if (id < 0 || id >= vocab_size_) {
        return Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                      std::to_string(vocab_size_) + ")");
      }
    }
  }
  return Status::Ok();
}

Status Runner::Run(std::span<const BatchEntry> batch, std::span<float> logits) { return RunStep(batch, logits, {}, {}, {}); }

Status Runner::Run(std::span<const BatchEntry> batch, std::span<float> logits, std::span<float> hidden) {
  return RunStep(batch, logits, {}, {}, hidden);
}

Status Runner::Run(std::span<const BatchEntry> batch, std::span<const RowSampling> sampling, std::span<SampledToken> sampled) {
  return Run(batch, sampling, sampled, {});
}

Status Runner::Run(std::span<const BatchEntry> batch, std::span<const RowSampling> sampling, std::span<SampledToken> sampled,
                   std::span<float> hidden) {
  if (!placed_->SupportsRowSampling()) return Error(ErrorCode::kUnsupported, "this backend samples on the host");
  if (sampling.size() != sampled.size() || static_cast<int64_t>(sampling.size()) != LogitRows(batch)) {
    return Error(ErrorCode::kInvalidArgument, "device sampling needs one entry per logit row (" + std::to_string(LogitRows(batch)) +
                                                  "), got " + std::to_string(sampling.size()) + " and " + std::to_string(sampled.size()));
  }
  return RunStep(batch, {}, sampling, sampled, hidden);
}

Status Runner::Draft(std::span<const DraftEntry> entries, std::span<float> hidden, std::span<int32_t> drafted, std::span<float> logits) {
  if (!draft_) return Error(ErrorCode::kUnsupported, "the program has no drafter (load the model with an MTP assistant)");
  const int64_t n = static_cast<int64_t>(entries.size());
  if (n < 1 || n > draft_->max_tokens) {
    return Error(ErrorCode::kInvalidArgument, "a draft step takes 1 to " + std::to_string(draft_->max_tokens) + " sequences, got " + std::to_string(n));
  }
  if (static_cast<int64_t>(hidden.size()) != n * hidden_size_ || static_cast<int64_t>(drafted.size()) != n ||
      (!logits.empty() && static_cast<int64_t>(logits.size()) != n * vocab_size_)) {
    return Error(ErrorCode::kInvalidArgument, "a draft step of " + std::to_string(n) + " sequences needs " + std::to_string(n * hidden_size_) +
                                                  " hidden-state floats and " + std::to_string(n) + " token slots");
  }
  const int64_t stride = program_->block_table_stride();
  for (int64_t i = 0; i < n; ++i) {
    const DraftEntry& entry = entries[static_cast<size_t>(i)];
    if (!entry.sequence || &entry.sequence->pool() != pool_.get()) {
      return Error(ErrorCode::kInvalidArgument, "draft entry " + std::to_string(i) + " is not a sequence of this model");
    }
    for (int64_t j = 0; j < i; ++j) {
      if (entries[static_cast<size_t>(j)].sequence == entry.sequence) return Error(ErrorCode::kInvalidArgument, "a sequence appears twice in one draft step");
    }
    const int64_t t = entry.sequence->length();
    if (t < 1 || t >= program_->max_context) {
      return Error(ErrorCode::kOutOfRange, "a draft at position " + std::to_string(t) + " needs a cached position before it, within the context of " +
                                               std::to_string(program_->max_context));
    }
    if (entry.token < 0 || entry.token >= vocab_size_) {
      return Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(entry.token) + " is outside the vocabulary [0, " + std::to_string(vocab_size_) + ")");
    }
    const size_t k = static_cast<size_t>(i);
    token_ids_[k] = entry.token;
    positions_[k] = static_cast<int32_t>(t);
    read_positions_[k] = static_cast<int32_t>(t - 1);
    sequences_[k] = static_cast<int32_t>(i);
    logit_rows_[k] = static_cast<int32_t>(i);
    std::span<const int32_t> table = entry.sequence->block_table();
    std::copy(table.begin(), table.end(), block_tables_.begin() + static_cast<std::ptrdiff_t>(i * stride));
  }
  const size_t N = static_cast<size_t>(n);
  StepIo io;
  io.token_ids = std::span<const int32_t>(token_ids_.data(), N);
  io.positions = std::span<const int32_t>(positions_.data(), N);
  io.sequences = std::span<const int32_t>(sequences_.data(), N);
  io.logit_rows = std::span<const int32_t>(logit_rows_.data(), N);
  io.read_positions = std::span<const int32_t>(read_positions_.data(), N);
  io.hidden = hidden;
  io.hidden_out = hidden.data();
  io.block_tables = std::span<const int32_t>(block_tables_.data(), N * static_cast<size_t>(stride));
  io.num_sequences = n;
  const bool on_device = logits.empty() && placed_->SupportsRowSampling();
  if (on_device) {
    greedy_.assign(N, RowSampling{});
    drawn_.resize(N);
    io.sample_rows = greedy_;
    io.sampled = drawn_.data();
  } else {
    if (logits.empty()) {
      draft_logits_.resize(N * static_cast<size_t>(vocab_size_));  // kept: no allocation per draft step
      logits = draft_logits_;
    }
    io.logits = logits.data();
  }
  TRY(placed_->RunStep(*draft_, io));
  for (size_t i = 0; i < N; ++i) {
    if (on_device) {
      drafted[i] = drawn_[i].id;
      continue;
    }
    const float* row = logits.data() + i * static_cast<size_t>(vocab_size_);
    drafted[i] = static_cast<int32_t>(std::max_element(row, row + vocab_size_) - row);
  }
  return Status::Ok();
}

Status Runner::RunStep(std::span<const BatchEntry> batch, std::span<float> logits, std::span<const RowSampling> sampling,
                       std::span<SampledToken> sampled, std::span<float> hidden) {
  int64_t tokens = 0;
  bool all_logits = false, one_token_each = true;
  for (const BatchEntry& entry : batch) {
    tokens += static_cast<int64_t>(entry.tokens.size());
    all_logits |= entry.all_logits;
    one_token_each &= entry.tokens.size() == 1;
  }
  TRY(Validate(batch, tokens));
  const int64_t rows = LogitRows(batch);
  if (sampling.empty() && static_cast<int64_t>(logits.size()) != rows * vocab_size_) {
    return Error(ErrorCode::kInvalidArgument, "logits buffer holds " + std::to_string(logits.size()) +
                                                  " floats, the step writes " + std::to_string(rows * vocab_size_));
  }
  const StepFunction* step = all_logits ? score_ : (one_token_each && tokens <= decode_->max_tokens ? decode_ : prefill_);
  if (!step || step->max_tokens < tokens || step->max_rows < rows) {
    return Error(ErrorCode::kUnsupported, "program has no step for " + std::to_string(tokens) + " tokens and " +
                                              std::to_string(rows) + " logit rows" + (all_logits ? " of every position" : ""));
  }
  if (!hidden.empty() && (step->hidden_value < 0 || static_cast<int64_t>(hidden.size()) != rows * hidden_size_)) {
    return Error(ErrorCode::kInvalidArgument, step->hidden_value < 0 ? "the program's steps have no hidden-state output (no drafter)"
                                                                     : "hidden-state buffer holds " + std::to_string(hidden.size()) +
                                                                           " floats, the step writes " + std::to_string(rows * hidden_size_));
  }
  for (const BatchEntry& entry : batch) {
    TRY(entry.sequence->Reserve(entry.sequence->length() + static_cast<int64_t>(entry.tokens.size())));
  }
  const int64_t stride = program_->block_table_stride();
  int64_t t = 0, r = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const BatchEntry& entry = batch[s];
    const int64_t start = entry.sequence->length(), count = static_cast<int64_t>(entry.tokens.size());
    for (int64_t i = 0; i < count; ++i, ++t) {
      token_ids_[static_cast<size_t>(t)] = entry.tokens[static_cast<size_t>(i)];
      positions_[static_cast<size_t>(t)] = static_cast<int32_t>(start + i);
      sequences_[static_cast<size_t>(t)] = static_cast<int32_t>(s);
      if (entry.all_logits || i == count - 1) logit_rows_[static_cast<size_t>(r++)] = static_cast<int32_t>(t);
    }
    std::span<const int32_t> table = entry.sequence->block_table();
    std::copy(table.begin(), table.end(), block_tables_.begin() + static_cast<std::ptrdiff_t>(static_cast<int64_t>(s) * stride));
  }
  const size_t T = static_cast<size_t>(tokens), S = batch.size();
  StepIo io;
  io.token_ids = std::span<const int32_t>(token_ids_.data(), T);
  io.positions = std::span<const int32_t>(positions_.data(), T);
  io.sequences = std::span<const int32_t>(sequences_.data(), T);
  io.logit_rows = std::span<const int32_t>(logit_rows_.data(), static_cast<size_t>(rows));
  io.block_tables = std::span<const int32_t>(block_tables_.data(), S * static_cast<size_t>(stride));
  io.num_sequences = static_cast<int64_t>(S);
  io.logits = logits.data();
  io.sample_rows = sampling;
  io.sampled = sampled.data();
  io.hidden_out = hidden.empty() ? nullptr : hidden.data();
  TRY(placed_->RunStep(*step, io));
  for (const BatchEntry& entry : batch) entry.sequence->Advance(static_cast<int64_t>(entry.tokens.size()));
  return Status::Ok();
}

Result<int64_t> Runner::DecodeOnDevice(Sequence& sequence, int32_t first, const DeviceSampling& sampling, int64_t max_steps,
                                       int depth, const std::function<bool(const SampledToken&)>& on_token,
                                       const AllowedTokensFn& allowed) {
  if (first < 0 || first >= vocab_size_) {
    return Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(first) + " is outside the vocabulary [0, " +
                                                  std::to_string(vocab_size_) + ")");
  }
  if (depth < 1 || depth > PlacedModel::kMaxDecodeInFlight) {
    return Error(ErrorCode::kInvalidArgument, "decode depth must be in [1, " + std::to_string(PlacedModel::kMaxDecodeInFlight) +
                                                  "], got " + std::to_string(depth));
  }
  // Steps run past a stop overwrite ring slots; the next step must still find its window there.
  // A ring holds window + Tmax - 1 positions, so at most Tmax steps may run past the last
  // accepted one: depth - 1 <= Tmax.
  depth = static_cast<int>(std::min<int64_t>(depth, program_->max_tokens + 1));
  const int64_t length = sequence.length();
  max_steps = std::min(max_steps, program_->max_context - length);
  if (max_steps <= 0) return int64_t{0};
  // The device reads the block table once: every block the steps may write is taken up front.
  TRY(sequence.Reserve(length + max_steps));
  TRY(placed_->BeginDecode(*decode_, first, length, sequence.block_table(), sampling, static_cast<bool>(allowed)));
  int64_t enqueued = 0, received = 0;
  Status status = Status::Ok();
  auto enqueue = [&]() {
    status = placed_->EnqueueDecode();
    if (status.ok()) ++enqueued;
    return status.ok();
  };
  // Takes the oldest step's token to on_token; false when decoding ends (stopped or failed).
  auto receive = [&]() {
    Result<SampledToken> token = placed_->NextDecoded();
    if (!token) {
      status = token.error();
      return false;
    }
    ++received;
    return on_token(*token);
  };
  if (allowed) {
    // Step k+1's model is queued before token k reaches the host; its mask follows once on_token
    // has taken token k, and the device waits for nothing else.
    mask_.resize(static_cast<size_t>((vocab_size_ + 63) / 64));
    auto submit_mask = [&]() {
      status = allowed(mask_);
      if (status.ok()) status = placed_->SubmitDecodeMask(mask_);
      return status.ok();
    };
    if (enqueue()) submit_mask();
    while (status.ok() && received < enqueued) {
      if (enqueued < max_steps && !enqueue()) break;
      if (!receive()) break;
      if (received < enqueued && !submit_mask()) break;
    }
  } else {
    while (enqueued < std::min<int64_t>(depth, max_steps) && enqueue()) {
    }
    while (status.ok() && received < enqueued) {
      if (!receive()) break;
      if (enqueued < max_steps) enqueue();
    }
  }
  placed_->EndDecode();
  // Steps past the last accepted token ran too: their positions were written.
  sequence.MarkWritten(length + enqueued);
  sequence.Advance(received);
  if (!status.ok()) return status.error();
  return received;
}

}  // namespace kiln
