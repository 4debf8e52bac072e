// Scheduler: many requests on one placed model (Runner), with continuous batching.
//
//   Scheduler scheduler(*runner, &tokenizer, {});
//   Request request;
//   request.prompt = ids;
//   request.options.max_new_tokens = 64;
//   request.on_done = [](RequestId id, Result<GenerationResult> result) { ... };
//   TRY_ASSIGN(RequestId id, scheduler.Submit(std::move(request)));   // any thread
//   scheduler.RunUntilIdle();                                          // or Start() a driver thread
//
// Requests enter a queue. Each step takes one token of every decoding sequence, then as many
// prompt tokens of prefilling sequences as the step's token bound (Tmax) leaves room for, oldest
// first: chunked prefill, so a long prompt never stalls the others. A request is admitted (given
// a sequence) while fewer than Smax run and the KV pool has blocks for its next chunk. When a
// decoding sequence needs a block and none is free, the newest running request is preempted: its
// blocks return to the pool and it waits to be prefilled again (prompt and the tokens it has
// generated), keeping its sampler, so its output is unchanged. Nothing ever fails for lack of KV
// memory unless one request alone needs more than the whole pool (then it ends with an error).
// Cancel() frees the request's blocks at the next step and ends it as cancelled.
//
// Each request has its own sampling options, seed, stop ids and strings and max tokens
// (GenerateOptions); its tokens stream through options.on_token and its end through on_done,
// both called on the driving thread. Sampling runs on the host (one Sampler per request).
//
// Prefix cache (SchedulerOptions::prefix_cache): see docs/engine.md. Full KV blocks of a prompt
// are kept after their request ends, keyed by a hash of every token up to their end; a new
// request whose prompt starts with cached blocks adopts them and skips their prefill
// (GenerationResult::reused_tokens). A model with sliding-window layers also needs each
// sliding ring as it was at the end of the cached prefix: the cache keeps a copy of the last
// window - 1 positions (in blocks of the sliding group), made when the prefix was prefilled, and
// copies it into the new sequence's ring.
//
// Speculative decoding (docs/speculative.md): a decoding request's entry carries its drafts and
// the step returns the logits of each of them (Verify accepts, then rewinds past the first
// rejection). Prompt lookup drafts on the host; a draft model (SchedulerOptions::draft_model)
// drafts for every request that uses it in batched steps of its own Runner before the target's
// step, each request with its own sequence on the draft model's KV pool. Drafts never preempt:
// drafts the step or either pool has no room for are dropped.
//
// Thread safety: Submit, Cancel and stats may be called from any thread; Step, RunUntilIdle and
// the driver thread (Start/Stop) drive the device, one at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/draft_model.h"
#include "engine/generator.h"
#include "engine/prefix_cache.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "engine/token_stream.h"
#include "runtime/runner.h"

namespace kiln {

using RequestId = uint64_t;

struct Request {
  std::vector<int32_t> prompt;
  GenerateOptions options;  // max_new_tokens, sampling, stops, top_logprobs, on_token (not decode_depth)
  std::function<void(RequestId, Result<GenerationResult>)> on_done;
};

struct SchedulerOptions {
  bool prefix_cache = true;
  // Where the backend can (Runner::SupportsRowSampling), a step whose sampled rows need no
  // logits on the host (no penalty, logprobs or kept logits) draws them on the device, an output
  // constraint's mask applied there; the device sampler's numbers differ from the host's for the
  // same seed.
  bool device_sampling = true;
  // Speculative decoding for requests that do not ask for it themselves (speculative.h): each
  // decoding sequence's step carries its drafts; rows are sampled on the host.
  SpeculativeOptions speculative;
  // Drafts of the requests that speculate with SpeculativeType::kDraft (not owned; it must
  // outlive the scheduler). Each such request has its own sequence on the draft model's pool;
  // every step, the drafts of all of them run batched before the target's step (docs/speculative.md).
  DraftModel* draft_model = nullptr;
};

struct SchedulerStats {
  int64_t waiting = 0;         // submitted, not running
  int64_t running = 0;         // holding a sequence
  int64_t finished = 0;
  int64_t cancelled = 0;       // of the finished ones
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t prompt_steps = 0;    // steps that ran prompt tokens (alone or beside decoding sequences)
  int64_t step_rows = 0;       // batch entries (sequences) over all steps: step_rows / steps is the mean batch
  int64_t prompt_tokens = 0;   // over finished requests
  int64_t cached_tokens = 0;   // prompt tokens taken from the prefix cache
  int64_t generated_tokens = 0;
  int64_t draft_tokens = 0;    // speculative decoding, over finished requests
  int64_t accepted_draft_tokens = 0;
  // Per draft position i, over finished requests: rounds that drafted that far, and those whose
  // drafts were accepted up to it (GenerationResult::RecordDrafts, RecordAcceptedDraft).
  std::vector<int64_t> drafted_by_position, accepted_by_position;
  int64_t free_blocks = 0;     // over all groups
  int64_t cached_blocks = 0;   // held by the prefix cache
  int64_t draft_cached_tokens = 0;  // prompt tokens the draft model took from its prefix cache
};

class Scheduler {
 public:
  Scheduler(Runner& runner, const tokenizer::Tokenizer* tokenizer, SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Validates and queues the request (any thread). kInvalidArgument / kOutOfRange for what can
  // never run: an empty prompt, invalid sampling options, a prompt longer than the context, stop
  // strings without a tokenizer.
  Result<RequestId> Submit(Request request);
  // Submit's checks alone.
  Status Check(const Request& request) const;
  // Ends the request as cancelled at the next step (any thread); unknown ids are ignored.
  void Cancel(RequestId id);

  // One batched step (the driving thread). False when there was nothing to do.
  Result<bool> Step();
  // Steps until no request is waiting or running.
  Status RunUntilIdle();
  // A driver thread that steps while there is work and sleeps otherwise; Stop() lets every
  // submitted request finish, then joins it.
  void Start();
  void Stop();

  SchedulerStats stats() const;

 private:
  // A request from submission to its end (driving thread only).
  struct Active {
    RequestId id = 0;
    Request request;
    std::unique_ptr<Sequence> sequence;  // while admitted
    std::vector<int32_t> tokens;         // the prompt, then every sampled token
    std::vector<int32_t> step_tokens;    // a speculative step: the pending token, then its drafts
    std::unique_ptr<DraftSequence> draft_sequence;  // kDraft: its cache on the draft model
    std::vector<int32_t> model_drafts;   // kDraft, kMtp: the drafter's tokens for this step
    std::vector<float> hidden;           // kMtp: the target's hidden state of the row that sampled the pending token
    int64_t draft_room = 0;              // kDraft: drafts this step's token bound leaves room for
    SpeculativeOptions speculative;      // the request's, or the scheduler's default
    int draft_limit = 0;                 // drafts of its next round (NextDraftLimit)
    int64_t fed = 0;                     // tokens whose K/V the sequence holds
    GenerationResult result;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<TokenStream> stream;
    std::unique_ptr<OutputConstraint> constraint;  // structured output, when asked for
    std::vector<uint64_t> allowed;                 // its bitset for a draw on the device
    std::chrono::steady_clock::time_point submitted, first_token;
    bool cancelled = false;
    bool prefix_cached = false;  // its prompt's prefix went into the cache (or never will)
    uint64_t device_draws = 0;   // draws taken by the device sampler (its counter for the seed)
    int64_t pending() const { return static_cast<int64_t>(tokens.size()) - fed; }
    bool prefilling() const { return fed < static_cast<int64_t>(request.prompt.size()); }
  };

  Result<bool> StepOnce();
  void TakeSubmissions();
  void Admit();
  void Finish(Active& active, std::optional<Error> error);
  void Preempt(Active& active);
  int64_t FreeBlocks(int32_t group) const;
  bool Fits(const std::vector<int64_t>& needed) const;
  // Draws the next token from the row's logits on the host, then Take. False when the request
  // ended (it is gone).
  Result<bool> Sample(Active& active, std::span<float> logits);
  // Records a sampled token: streams it, checks the stops, ends the request when it stops
  // (returns false: it is gone).
  bool Take(Active& active, GeneratedToken& token);
  // The most drafts the request's next step may carry beside the step's token bound (`room`):
  // its draft limit, the context and max tokens.
  int64_t DraftRoom(const Active& active, int64_t room) const;
  // The draft model's and the MTP assistant's drafts for every decoding request that speculates
  // with one, batched, into active.model_drafts. A failed draft step ends the requests in it;
  // false when any ended.
  bool DraftWithModels(const std::vector<Active*>& decoding);
  // Drafts for a decoding request's next step into active.step_tokens (after its pending
  // token), at most `room`; returns how many.
  int64_t Draft(Active& active, int64_t room);
  // A speculative step's rows (one per step token): samples them in order while they confirm
  // the drafts, then rewinds the sequence past the first rejected draft.
  // `hidden` (kMtp): the entry's hidden-state rows; the sampling row's becomes active.hidden.
  Status Verify(Active& active, int64_t base, std::span<float> rows, std::span<const float> hidden);
  // Whether the request's next token may be drawn on the device.
  bool DeviceSampleable(const Active& active) const;
  // The prefix cache (prefix_cache.h): adopted when a request is admitted, filled once its
  // prompt's cached length has run; EvictOne also updates the stats.
  void AdoptCachedPrefix(Active& active);
  Status CachePrefix(Active& active);
  bool EvictOne();

  Runner& runner_;
  const Program& program_;
  const tokenizer::Tokenizer* tokenizer_;
  SchedulerOptions options_;

  mutable std::mutex mutex_;  // guards incoming_, cancelled_, next_id_, stats_, stopping_
  std::condition_variable wake_;
  std::deque<std::pair<RequestId, Request>> incoming_;
  std::vector<RequestId> cancelled_;
  RequestId next_id_ = 1;
  SchedulerStats stats_;
  bool stopping_ = false;
  std::thread driver_;

  // Driving thread only.
  std::list<std::unique_ptr<Active>> waiting_;  // admission order (preempted ones first)
  std::list<std::unique_ptr<Active>> running_;  // admission order
  std::vector<float> logits_;
  std::vector<float> hidden_rows_;  // the step's hidden-state rows, when a request drafts with MTP
  std::vector<RowSampling> row_sampling_;
  std::vector<SampledToken> sampled_;
  std::vector<BatchEntry> batch_;
  std::vector<Active*> batch_owner_;
  PrefixCache prefixes_;
};

}  // namespace kiln
