// Runner: a Program placed on a Backend once, its KV block pool, and batched steps over
// sequences of that pool.
//
// Every sequence on a Runner shares its weights, kernels, arena and device; a sequence costs
// only its KV blocks. Run() executes one step over any mix of sequences: some prefilling a chunk,
// some decoding one token, each at its own positions. It takes the blocks the step's positions
// need, fills the step inputs (token ids, positions, the sequence of each token, the logit rows,
// the block tables) into buffers sized at the Program's bounds, picks the step function planned
// for the batch's shape and runs it. A single sequence is the batch of one (Session).
//
//   TRY_ASSIGN(auto runner, Runner::Create(program, backend, weights, {}));
//   Sequence a(runner->pool()), b(runner->pool());
//   BatchEntry batch[] = {{&a, prompt_a}, {&b, {&next_b, 1}}};
//   TRY(runner->Run(batch, logits));   // rows: a's last, then b's
//
// Not thread-safe: one thread drives a Runner (the scheduler's).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "runtime/backend.h"
#include "runtime/kv_pool.h"

namespace kiln {

struct RunnerOptions {
  int num_threads = 0;
  KvPoolSize kv_pool;           // empty: Program::max_sequences sequences at the full context
  bool random_weights = false;  // benchmarks: the backend creates pseudo-random weights
  uint64_t random_seed = 0;
};

struct BatchEntry {
  Sequence* sequence = nullptr;
  std::span<const int32_t> tokens;  // run at positions [length, length + size)
  bool all_logits = false;          // logits of every token, else of the last one
};

class Runner {
 public:
  static Result<std::unique_ptr<Runner>> Create(const Program& program, Backend& backend, std::vector<WeightView> weights,
                                                const RunnerOptions& options);

  // One step over `batch` (distinct sequences). `logits` receives, in entry order, each entry's
  // rows (all of its tokens', or its last token's) x vocab floats. Each sequence advances by its
  // token count. Fails without running anything when the batch exceeds the Program's bounds
  // (tokens, sequences, context), a token id is outside the vocabulary, or the pool cannot give
  // the blocks the step needs (kOutOfMemory; blocks already taken stay with their sequences).
  Status Run(std::span<const BatchEntry> batch, std::span<float> logits);
  // The same step, its rows sampled on the device (SupportsRowSampling): `sampling` and `sampled`
  // have one entry per logit row; no logits reach the host.
  Status Run(std::span<const BatchEntry> batch, std::span<const RowSampling> sampling, std::span<SampledToken> sampled);
  bool SupportsRowSampling() const { return placed_->SupportsRowSampling(); }
  // Either step, with the final-normed hidden state of every logit row written to `hidden`
  // (rows x hidden_size() floats, in row order): what an MTP drafter continues from. Only for a
  // program with a drafter (has_drafter()).
  Status Run(std::span<const BatchEntry> batch, std::span<float> logits, std::span<float> hidden);
  Status Run(std::span<const BatchEntry> batch, std::span<const RowSampling> sampling, std::span<SampledToken> sampled,
             std::span<float> hidden);

  // MTP drafting (the Program's "draft" step, LoadOptions::assistant; docs/speculative.md).
  bool has_drafter() const { return draft_ != nullptr; }
  // Columns of the hidden state a drafter continues from: the target's hidden size (0 without one).
  int64_t hidden_size() const { return hidden_size_; }
  struct DraftEntry {
    Sequence* sequence = nullptr;
    int32_t token = 0;  // the sequence's newest token, at position length() (not yet in its cache)
  };
  // One drafter step over `entries` (distinct sequences of this runner, each holding at least one
  // position): each drafts the token after `token` at position t = length(), reading the cache
  // through t - 1 and continuing from its row of `hidden` (entries x hidden_size() floats), which
  // receives the drafter's next hidden state. `drafted` receives each row's argmax (drawn
  // greedily on the device where the backend samples); with `logits` (entries x vocab), the
  // drafter's logits come to the host and the argmax is taken there. No sequence changes.
  Status Draft(std::span<const DraftEntry> entries, std::span<float> hidden, std::span<int32_t> drafted, std::span<float> logits = {});
  // Logit rows Run() writes for `batch`.
  static int64_t LogitRows(std::span<const BatchEntry> batch);

  // Pipelined decode of one sequence with sampling on the device, where the backend has it:
  // steps feed `first` at the sequence's length, then each sampled token, keeping up to `depth`
  // steps in flight (at most Tmax + 1, so that steps run past a stop never overwrite a ring slot
  // the next step reads), so the host never waits between steps. `on_token` sees each sampled
  // token in order and returns false to stop. At most `max_steps` steps run (fewer when the
  // context ends). Steps in flight past a stop are discarded: afterwards the sequence has grown by
  // exactly the number of tokens passed to on_token; their cache positions count as written.
  // Returns that number.
  // With `allowed` (structured output), each draw is limited to the ids whose bits it sets
  // (RowSampling::allowed): it is asked for the bitset of step k+1 after on_token has seen token k,
  // while step k+1's model already runs on the device, so one step runs ahead of its mask whatever
  // `depth` says. An error from it ends the decode with that error.
  using AllowedTokensFn = std::function<Status(std::span<uint64_t> allowed)>;
  bool SupportsDecodeOnDevice() const { return placed_->SupportsDecodeOnDevice(); }
  Result<int64_t> DecodeOnDevice(Sequence& sequence, int32_t first, const DeviceSampling& sampling, int64_t max_steps,
                                 int depth, const std::function<bool(const SampledToken&)>& on_token,
                                 const AllowedTokensFn& allowed = {});

  KvBlockPool& pool() { return *pool_; }
  const Program& program() const { return *program_; }
  int64_t vocab_size() const { return vocab_size_; }
  MemoryReport memory() const { return placed_->memory(); }
  PlacedModel& placed() { return *placed_; }

 private:
  Runner() = default;
  Status Validate(std::span<const BatchEntry> batch, int64_t tokens) const;
  Status RunStep(std::span<const BatchEntry> batch, std::span<float> logits, std::span<const RowSampling> sampling,
                 std::span<SampledToken> sampled, std::span<float> hidden);

  const Program* program_ = nullptr;
  std::unique_ptr<PlacedModel> placed_;
  std::unique_ptr<KvBlockPool> pool_;
  int64_t vocab_size_ = 0;
  const StepFunction* decode_ = nullptr;   // T <= Smax, one token per sequence
  const StepFunction* prefill_ = nullptr;  // T <= Tmax, last-token logits
  const StepFunction* score_ = nullptr;    // T <= Tmax, logits of every token
  const StepFunction* draft_ = nullptr;    // T <= Smax: the MTP drafter, one token per sequence
  int64_t hidden_size_ = 0;
  // Step inputs, sized at the bounds once.
  std::vector<int32_t> token_ids_, positions_, sequences_, logit_rows_, block_tables_, read_positions_;
  std::vector<RowSampling> greedy_;    // Draft on the device: one greedy draw per row
  std::vector<SampledToken> drawn_;
  std::vector<float> draft_logits_;    // Draft on the host: the rows it takes the argmax of
  std::vector<uint64_t> mask_;  // the allowed-token bitset of constrained device decoding
};

}  // namespace kiln
