#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>

#include "engine/mtp_draft.h"
#include "engine/sampler.h"
#include "engine/token_stream.h"

namespace kiln {

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

}  // namespace


Scheduler::Scheduler(Runner& runner, const tokenizer::Tokenizer* tokenizer, SchedulerOptions options)
    : runner_(runner), program_(runner.program()), tokenizer_(tokenizer), options_(options), prefixes_(runner) {
  logits_.resize(static_cast<size_t>(program_.max_sequences * runner_.vocab_size()));
  batch_.reserve(static_cast<size_t>(program_.max_sequences));
  batch_owner_.reserve(static_cast<size_t>(program_.max_sequences));
  if (!prefixes_.enabled()) options_.prefix_cache = false;
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::AdoptCachedPrefix(Active& active) {
  const int64_t length = prefixes_.Adopt(active.request.prompt, *active.sequence);
  if (length == 0) return;
  active.fed = length;
  if (active.result.tokens.empty()) active.result.reused_tokens = length;
}

Status Scheduler::CachePrefix(Active& active) {
  if (active.fed < prefixes_.CachedLength(active.request.prompt.size())) return Status::Ok();
  active.prefix_cached = true;
  TRY(prefixes_.Insert(active.request.prompt, *active.sequence));
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.cached_blocks = prefixes_.cached_blocks();
  return Status::Ok();
}

bool Scheduler::EvictOne() {
  if (!prefixes_.EvictOne()) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.cached_blocks = prefixes_.cached_blocks();
  return true;
}

Result<RequestId> Scheduler::Submit(Request request) {
  TRY(Check(request));
  std::lock_guard<std::mutex> lock(mutex_);
  const RequestId id = next_id_++;
  incoming_.emplace_back(id, std::move(request));
  ++stats_.waiting;
  wake_.notify_all();
  return id;
}

Status Scheduler::Check(const Request& request) const {
  TRY(request.options.sampling.Validate());
  TRY(request.options.speculative.Validate());
  const SpeculativeType speculative =
      request.options.speculative.enabled() ? request.options.speculative.type : options_.speculative.type;
  if (speculative == SpeculativeType::kDraft) {
    if (options_.draft_model == nullptr) {
      return Error(ErrorCode::kInvalidArgument, "speculative type draft needs the scheduler's draft model "
                                                "(SchedulerOptions::draft_model; --draft MODEL)");
    }
    if (request.options.speculative.drafter != nullptr) {
      return Error(ErrorCode::kInvalidArgument, "a Drafter drafts for one sequence (Generator); scheduled requests draft "
                                                "with the scheduler's draft model: leave SpeculativeOptions::drafter unset");
    }
    if (options_.draft_model->vocab_size() != runner_.vocab_size()) {
      return Error(ErrorCode::kInvalidArgument, "the draft model " + options_.draft_model->model().source() + " has a vocabulary of " +
                                                    std::to_string(options_.draft_model->vocab_size()) + " tokens, the target's has " +
                                                    std::to_string(runner_.vocab_size()));
    }
  }
  if (speculative == SpeculativeType::kMtp) TRY(CheckMtpDrafter(runner_));
  if (request.prompt.empty()) return Error(ErrorCode::kInvalidArgument, "the prompt is empty: give at least one token");
  if (request.options.max_new_tokens < 0) {
    return Error(ErrorCode::kInvalidArgument, "max tokens must be >= 0, got " + std::to_string(request.options.max_new_tokens));
  }
  if (static_cast<int64_t>(request.prompt.size()) > program_.max_context) {
    return Error(ErrorCode::kOutOfRange, "the prompt has " + std::to_string(request.prompt.size()) +
                                             " tokens, more than the context of " + std::to_string(program_.max_context) +
                                             " tokens; raise --ctx or shorten the prompt");
  }
  for (int32_t id : request.prompt) {
    if (id < 0 || id >= runner_.vocab_size()) {
      return Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                    std::to_string(runner_.vocab_size()) + ")");
    }
  }
  if (!request.options.stop_strings.empty() && !tokenizer_) {
    return Error(ErrorCode::kInvalidArgument, "stop strings need the model's tokenizer (tokenizer.json)");
  }
  if (request.options.top_logprobs < 0 || request.options.top_logprobs > 1000) {
    return Error(ErrorCode::kInvalidArgument, "top_logprobs must be in [0, 1000], got " + std::to_string(request.options.top_logprobs));
  }
  return Status::Ok();
}

void Scheduler::Cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_.push_back(id);
  wake_.notify_all();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Scheduler::TakeSubmissions() {
  std::deque<std::pair<RequestId, Request>> incoming;
  std::vector<RequestId> cancelled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    incoming.swap(incoming_);
    cancelled.swap(cancelled_);
  }
  for (auto& [id, request] : incoming) {
    auto active = std::make_unique<Active>();
    active->id = id;
    active->request = std::move(request);
    active->tokens = active->request.prompt;
    active->speculative = active->request.options.speculative.enabled() ? active->request.options.speculative : options_.speculative;
    active->draft_limit = active->speculative.draft_max;
    active->sampler = std::make_unique<Sampler>(active->request.options.sampling);
    active->stream = std::make_unique<TokenStream>(active->request.options, tokenizer_, active->result);
    if (active->request.options.constraint) active->constraint = std::make_unique<OutputConstraint>(active->request.options.constraint);
    active->result.prompt_tokens = static_cast<int64_t>(active->tokens.size());
    active->submitted = Clock::now();
    active->prefix_cached = !options_.prefix_cache;
    waiting_.push_back(std::move(active));
  }
  for (RequestId id : cancelled) {
    for (auto* list : {&waiting_, &running_}) {
      for (auto& active : *list) {
        if (active->id == id) active->cancelled = true;
      }
    }
  }
  for (auto* list : {&waiting_, &running_}) {
    for (auto it = list->begin(); it != list->end();) {
      Active& active = **it;
      ++it;  // Finish erases the element
      if (active.cancelled) {
        active.result.stop_reason = StopReason::kCancelled;
        {
          std::lock_guard<std::mutex> lock(mutex_);
          ++stats_.cancelled;
        }
        Finish(active, std::nullopt);
      }
    }
  }
}

int64_t Scheduler::FreeBlocks(int32_t group) const { return runner_.pool().free_blocks(group); }

bool Scheduler::Fits(const std::vector<int64_t>& needed) const {
  for (size_t g = 0; g < needed.size(); ++g) {
    if (needed[g] > FreeBlocks(static_cast<int32_t>(g))) return false;
  }
  return true;
}

void Scheduler::Finish(Active& active, std::optional<Error> error) {
  if (!error) {
    active.stream->Finish();
    const auto now = Clock::now();
    if (!active.result.tokens.empty()) active.result.decode_seconds = Seconds(active.first_token, now);
  }
  if (active.sequence) active.sequence->Release();
  active.draft_sequence.reset();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.finished;
    stats_.prompt_tokens += active.result.prompt_tokens;
    stats_.cached_tokens += active.result.reused_tokens;
    stats_.generated_tokens += static_cast<int64_t>(active.result.tokens.size());
    stats_.draft_tokens += active.result.draft_tokens;
    stats_.accepted_draft_tokens += active.result.accepted_draft_tokens;
    const size_t positions = active.result.drafted_by_position.size();
    if (stats_.drafted_by_position.size() < positions) {
      stats_.drafted_by_position.resize(positions, 0);
      stats_.accepted_by_position.resize(positions, 0);
    }
    for (size_t i = 0; i < positions; ++i) {
      stats_.drafted_by_position[i] += active.result.drafted_by_position[i];
      stats_.accepted_by_position[i] += active.result.accepted_by_position[i];
    }
  }
  std::unique_ptr<Active> owned;
  for (auto* list : {&waiting_, &running_}) {
    for (auto it = list->begin(); it != list->end(); ++it) {
      if (it->get() == &active) {
        owned = std::move(*it);
        list->erase(it);
        break;
      }
    }
    if (owned) break;
  }
  if (owned && owned->request.on_done) {
    if (error) {
      owned->request.on_done(owned->id, *error);
    } else {
      owned->request.on_done(owned->id, std::move(owned->result));
    }
  }
}

void Scheduler::Preempt(Active& active) {
  active.sequence.reset();  // returns its blocks
  active.draft_sequence.reset();  // and the draft model's, for the requests still running
  active.fed = 0;
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if (it->get() == &active) {
      waiting_.push_front(std::move(*it));
      running_.erase(it);
      break;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.preemptions;
}

void Scheduler::Admit() {
  while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < program_.max_sequences) {
    Active& active = *waiting_.front();
    active.sequence = std::make_unique<Sequence>(runner_.pool());
    active.fed = 0;
    if (options_.prefix_cache) AdoptCachedPrefix(active);
    const int64_t first_chunk = std::min(active.pending(), program_.max_tokens);
    std::vector<int64_t> needed = active.sequence->BlocksNeeded(active.fed + first_chunk);
    while (!Fits(needed) && EvictOne()) {
    }
    if (!Fits(needed)) {
      active.sequence.reset();
      active.fed = 0;
      break;  // first come, first served: nothing overtakes the oldest waiting request
    }
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

Result<bool> Scheduler::Sample(Active& active, std::span<float> logits) {
  const GenerateOptions& options = active.request.options;
  GeneratedToken token;
  std::vector<float> raw;
  if (options.top_logprobs > 0) {
    token.top_logprobs = TopLogprobs(logits, options.top_logprobs);
    raw.assign(logits.begin(), logits.end());  // the penalty edits the logits
  }
  if (options.keep_logits) active.result.logits.insert(active.result.logits.end(), logits.begin(), logits.end());
  if (active.constraint) {
    Status masked = active.constraint->Mask(logits);
    if (!masked.ok()) {
      Finish(active, masked.error());
      return false;
    }
  }
  token.id = active.sampler->Sample(logits, active.tokens, active.request.prompt.size());
  if (active.constraint) {
    if (Status accepted = active.constraint->Accept(token.id); !accepted.ok()) {
      Finish(active, accepted.error());
      return false;
    }
  }
  token.logprob = options.top_logprobs > 0 ? Logprob(raw, token.id) : 0.0f;
  return Take(active, token);
}

bool Scheduler::DeviceSampleable(const Active& active) const {
  const GenerateOptions& options = active.request.options;
  return !active.speculative.enabled() && !options.sampling.penalized() && options.top_logprobs == 0 && !options.keep_logits;
}

bool Scheduler::Take(Active& active, GeneratedToken& token) {
  token.index = static_cast<int64_t>(active.result.tokens.size());
  if (active.result.tokens.empty()) {
    active.first_token = Clock::now();
    active.result.first_token_seconds = Seconds(active.submitted, active.first_token);
  }
  active.tokens.push_back(token.id);
  ++active.result.decode_steps;
  bool more = active.stream->Accept(token);
  if (more && active.constraint && active.constraint->Terminated()) {  // the grammar's end
    active.result.stop_reason = StopReason::kEos;
    more = false;
  }
  if (more && active.fed >= program_.max_context) {
    active.result.stop_reason = StopReason::kContextFull;
    more = false;
  }
  if (!more) Finish(active, std::nullopt);
  return more;
}

Result<bool> Scheduler::Step() {
  Result<bool> worked = StepOnce();
  // Whatever the step did (ran, finished, cancelled or preempted requests), the counts follow.
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.running = static_cast<int64_t>(running_.size());
  stats_.waiting = static_cast<int64_t>(waiting_.size() + incoming_.size());
  stats_.free_blocks = 0;
  for (int32_t g = 0; g < runner_.pool().num_groups(); ++g) stats_.free_blocks += FreeBlocks(g);
  return worked;
}

Result<bool> Scheduler::StepOnce() {
  TakeSubmissions();
  // Requests asking for no tokens end before they take any memory.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Active& active = **it;
    ++it;
    if (active.request.options.max_new_tokens == 0 && active.result.tokens.empty()) Finish(active, std::nullopt);
  }
  Admit();
  if (running_.empty()) {
    if (!waiting_.empty()) {
      // Nothing runs and the oldest request cannot get its first chunk from an empty pool.
      Active& active = *waiting_.front();
      Finish(active, Error(ErrorCode::kOutOfMemory, "the request needs more KV blocks than the whole pool holds; "
                                                    "give the pool more memory or lower --chunk"));
      return true;
    }
    return false;
  }

  batch_.clear();
  batch_owner_.clear();
  int64_t budget = program_.max_tokens;
  std::vector<int64_t> claimed(program_.kv_groups.size(), 0);
  auto fits_with_claimed = [&](const std::vector<int64_t>& needed) {
    for (size_t g = 0; g < needed.size(); ++g) {
      if (needed[g] + claimed[g] > FreeBlocks(static_cast<int32_t>(g))) return false;
    }
    return true;
  };
  auto claim = [&](const std::vector<int64_t>& needed) {
    for (size_t g = 0; g < needed.size(); ++g) claimed[g] += needed[g];
  };
  // Decoding sequences first: one token each. A sequence that needs a block the pool cannot give
  // makes room by preempting the newest running request (possibly itself).
  std::vector<Active*> decoding;
  for (auto& owned : running_) {
    if (!owned->prefilling() && owned->pending() == 1) decoding.push_back(owned.get());
  }
  // A failed draft step ended its requests: this step is done (the next one starts afresh).
  if (!DraftWithModels(decoding)) return true;
  for (Active* candidate : decoding) {
    Active& active = *candidate;
    if (budget == 0) break;
    if (!active.sequence) continue;  // preempted to make room for an earlier one
    int64_t drafted = Draft(active, budget - 1);
    std::vector<int64_t> needed = active.sequence->BlocksNeeded(active.fed + 1 + drafted);
    if (drafted > 0 && !fits_with_claimed(needed)) {  // drafts never preempt anyone
      active.result.draft_tokens -= drafted;
      active.step_tokens.resize(1);
      drafted = 0;
      needed = active.sequence->BlocksNeeded(active.fed + 1);
    }
    while (!fits_with_claimed(needed) && EvictOne()) {
    }
    while (!fits_with_claimed(needed) && !active.sequence->pool().AllFree()) {
      Active& victim = *running_.back();
      const bool self = &victim == &active;
      // A victim already in this step's batch keeps its place; preempt the newest one not in it.
      if (std::find(batch_owner_.begin(), batch_owner_.end(), &victim) != batch_owner_.end()) break;
      Preempt(victim);
      if (self) break;
    }
    if (!active.sequence || !fits_with_claimed(needed)) continue;
    claim(needed);
    batch_.push_back({active.sequence.get(), active.step_tokens, /*all_logits=*/drafted > 0});
    batch_owner_.push_back(&active);
    budget -= 1 + drafted;
  }
  // Then prompt chunks, oldest first, as large as the step and the pool allow.
  for (auto& owned : running_) {
    if (budget == 0 || static_cast<int64_t>(batch_.size()) == program_.max_sequences) break;
    Active& active = *owned;
    if (!active.prefilling() && active.pending() == 1) continue;
    if (std::find(batch_owner_.begin(), batch_owner_.end(), &active) != batch_owner_.end()) continue;
    int64_t take = std::min(active.pending(), budget);
    while (take > 0 && !fits_with_claimed(active.sequence->BlocksNeeded(active.fed + take))) {
      if (!EvictOne()) take -= std::min<int64_t>(take, program_.kv_block_size);
    }
    if (take == 0) continue;
    claim(active.sequence->BlocksNeeded(active.fed + take));
    batch_.push_back({active.sequence.get(), std::span<const int32_t>(active.tokens.data() + active.fed, static_cast<size_t>(take))});
    batch_owner_.push_back(&active);
    budget -= take;
  }
  if (batch_.empty()) {
    // Every running request is blocked on memory held by the others: free the newest.
    if (running_.size() > 1) {
      Preempt(*running_.back());
    } else {
      Finish(*running_.front(), Error(ErrorCode::kOutOfMemory, "the request needs more KV blocks than the whole pool holds; "
                                                              "give the pool more memory or lower --ctx"));
    }
    return true;
  }

  // Rows drawn on the device when every row that samples this step allows it. A speculative
  // entry (the pending token and its drafts: more tokens than pending) needs every row's logits
  // on the host to verify its drafts, so a step that carries one samples on the host.
  bool on_device = options_.device_sampling && runner_.SupportsRowSampling();
  for (size_t b = 0; b < batch_.size() && on_device; ++b) {
    const Active& active = *batch_owner_[b];
    const bool samples = active.pending() == static_cast<int64_t>(batch_[b].tokens.size());
    on_device = !batch_[b].all_logits && (!samples || DeviceSampleable(active));
  }
  // A constrained row's mask, computed before the step; a grammar that allows nothing more is
  // reported by the host path (Sample), so such a step samples there.
  for (size_t b = 0; b < batch_.size() && on_device; ++b) {
    Active& active = *batch_owner_[b];
    if (!active.constraint || active.pending() != static_cast<int64_t>(batch_[b].tokens.size())) continue;
    active.allowed.resize(static_cast<size_t>((runner_.vocab_size() + 63) / 64));
    on_device = active.constraint->FillAllowed(active.allowed).ok();
  }
  // Requests drafting with an MTP assistant keep the hidden state of the row that samples.
  bool mtp = false;
  for (const Active* active : batch_owner_) mtp |= active->speculative.enabled() && active->speculative.type == SpeculativeType::kMtp;
  const size_t width = static_cast<size_t>(runner_.hidden_size());
  const size_t hidden_floats = mtp ? static_cast<size_t>(Runner::LogitRows(batch_)) * width : 0;
  if (hidden_rows_.size() < hidden_floats) hidden_rows_.resize(hidden_floats);
  const std::span<float> hidden(hidden_rows_.data(), hidden_floats);
  Status ran = Status::Ok();
  if (on_device) {
    row_sampling_.assign(batch_.size(), RowSampling{});
    sampled_.assign(batch_.size(), SampledToken{});
    for (size_t b = 0; b < batch_.size(); ++b) {
      const Active& active = *batch_owner_[b];
      const SamplingOptions& o = active.request.options.sampling;
      const bool samples = active.pending() == static_cast<int64_t>(batch_[b].tokens.size());
      row_sampling_[b] = {DeviceSampling{o.temperature, o.top_k, o.top_p, o.min_p, o.seed}, active.device_draws,
                          samples && active.constraint ? active.allowed.data() : nullptr};
    }
    ran = runner_.Run(batch_, row_sampling_, sampled_, hidden);
  } else {
    const size_t floats = static_cast<size_t>(Runner::LogitRows(batch_) * runner_.vocab_size());
    if (logits_.size() < floats) logits_.resize(floats);  // speculative steps: rows beyond Smax
    ran = runner_.Run(batch_, std::span<float>(logits_.data(), floats), hidden);
  }
  {
    bool prompt_step = false;
    for (const Active* active : batch_owner_) prompt_step |= active->fed < static_cast<int64_t>(active->request.prompt.size());
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.steps;
    stats_.prompt_steps += prompt_step;
    stats_.step_rows += static_cast<int64_t>(batch_.size());
  }
  if (!ran.ok()) {
    // A failed step leaves the caches of its sequences unknown: end every request in it.
    std::vector<Active*> failed = batch_owner_;
    for (Active* active : failed) Finish(*active, ran.error());
    return true;
  }
  const std::vector<Active*> owners = batch_owner_;
  size_t first_row = 0;  // of entry b in logits_
  for (size_t b = 0; b < owners.size(); ++b) {
    Active& active = *owners[b];
    const size_t entry_rows = batch_[b].all_logits ? batch_[b].tokens.size() : 1;
    const std::span<float> rows(logits_.data() + first_row * static_cast<size_t>(runner_.vocab_size()),
                                entry_rows * static_cast<size_t>(runner_.vocab_size()));
    const bool keeps_hidden = mtp && active.speculative.enabled() && active.speculative.type == SpeculativeType::kMtp;
    const std::span<const float> entry_hidden =
        keeps_hidden ? std::span<const float>(hidden_rows_.data() + (first_row * width), entry_rows * width) : std::span<const float>();
    first_row += entry_rows;
    if (batch_[b].all_logits) {  // a speculative step of a decoding request
      if (keeps_hidden) active.hidden.resize(width);
      TRY(Verify(active, active.fed, rows, entry_hidden));
      continue;
    }
    // The state of the entry's last token: what drafting for the token after it continues from.
    if (keeps_hidden) active.hidden.assign(entry_hidden.begin(), entry_hidden.end());
    active.fed += static_cast<int64_t>(batch_[b].tokens.size());
    if (!active.prefix_cached && options_.prefix_cache) TRY(CachePrefix(active));
    if (active.pending() > 0) continue;  // mid-prompt chunk: its logits are not needed
    if (active.result.tokens.empty() && active.result.prefill_seconds == 0) {
      active.result.prefill_seconds = Seconds(active.submitted, Clock::now());
    }
    if (on_device) {
      ++active.device_draws;
      GeneratedToken token;
      token.id = sampled_[b].id;
      token.logprob = sampled_[b].logprob;
      if (active.constraint) {
        if (Status accepted = active.constraint->Accept(token.id); !accepted.ok()) {
          Finish(active, accepted.error());
          continue;
        }
      }
      Take(active, token);
      continue;
    }
    TRY(Sample(active, rows).status());
  }
  return true;
}

Status Scheduler::RunUntilIdle() {
  while (true) {
    TRY_ASSIGN(bool worked, Step());
    if (!worked) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (incoming_.empty()) return Status::Ok();
    }
  }
}

void Scheduler::Start() {
  if (driver_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = false;
  }
  driver_ = std::thread([this] {
    while (true) {
      Result<bool> worked = Step();
      if (worked.has_value() && *worked) continue;
      std::unique_lock<std::mutex> lock(mutex_);
      if (stopping_ && incoming_.empty() && waiting_.empty() && running_.empty()) return;
      wake_.wait(lock, [&] { return stopping_ || !incoming_.empty() || !cancelled_.empty(); });
    }
  });
}

void Scheduler::Stop() {
  if (!driver_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  driver_.join();
}

}  // namespace kiln
