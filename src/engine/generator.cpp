#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "engine/mtp_draft.h"
#include "engine/speculative.h"
#include "engine/token_stream.h"

namespace kiln {

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

bool Cancelled(const GenerateOptions& options) {
  return options.cancel && options.cancel->load(std::memory_order_relaxed);
}

}  // namespace

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kEos: return "eos";
    case StopReason::kStopString: return "stop_string";
    case StopReason::kMaxTokens: return "max_tokens";
    case StopReason::kContextFull: return "context_full";
    case StopReason::kCancelled: return "cancelled";
  }
  return "unknown";
}

void GenerationResult::RecordDrafts(int64_t drafted) {
  if (static_cast<int64_t>(drafted_by_position.size()) < drafted) {
    drafted_by_position.resize(static_cast<size_t>(drafted), 0);
    accepted_by_position.resize(static_cast<size_t>(drafted), 0);
  }
  for (int64_t i = 0; i < drafted; ++i) ++drafted_by_position[static_cast<size_t>(i)];
}

Generator::Generator(Session& session, const tokenizer::Tokenizer* tokenizer)
    : session_(session), tokenizer_(tokenizer), logits_(static_cast<size_t>(session.vocab_size())) {}

void Generator::Reset() {
  session_.Reset();
  cached_.clear();
}

Result<int64_t> Generator::Prefill(std::span<const int32_t> prompt, const GenerateOptions& options) {
  // The cache must mirror cached_; anything else (another user of the session) starts over.
  if (session_.length() != static_cast<int64_t>(cached_.size())) Reset();
  const size_t common = static_cast<size_t>(
      std::mismatch(cached_.begin(), cached_.end(), prompt.begin(), prompt.end()).first - cached_.begin());
  // The last prompt token always runs: its logits pick the first new token.
  int64_t reuse = static_cast<int64_t>(std::min(common, prompt.size() - 1));
  // Rewindable lengths are 0 and [some bound, length()] (Session::CanRewind), so when `reuse`
  // is too far back, only a full prefill is left.
  if (!session_.CanRewind(reuse)) reuse = 0;
  TRY(session_.Rewind(reuse));
  cached_.resize(static_cast<size_t>(reuse));

  const int64_t tmax = session_.program().max_tokens;
  hidden_.resize(static_cast<size_t>(session_.runner().hidden_size()));  // empty without a drafter
  const int64_t suffix = static_cast<int64_t>(prompt.size()) - reuse;
  const int64_t threshold = options.prefill_chunk_threshold > 0 ? options.prefill_chunk_threshold : tmax;
  int64_t chunk = suffix <= threshold ? tmax : (options.prefill_chunk > 0 ? options.prefill_chunk : tmax);
  chunk = std::clamp<int64_t>(chunk, 1, tmax);
  const bool progress = options.on_prefill_progress && chunk < suffix;
  if (progress) options.on_prefill_progress(reuse, static_cast<int64_t>(prompt.size()), reuse);
  for (int64_t begin = reuse; begin < static_cast<int64_t>(prompt.size()); begin += chunk) {
    if (Cancelled(options)) return reuse;  // the caller sees cancel and stops
    const int64_t count = std::min<int64_t>(chunk, static_cast<int64_t>(prompt.size()) - begin);
    const auto part = prompt.subspan(static_cast<size_t>(begin), static_cast<size_t>(count));
    TRY(session_.StepInto(part, /*all_positions=*/false, logits_, hidden_));
    cached_.insert(cached_.end(), part.begin(), part.end());
    if (progress) options.on_prefill_progress(static_cast<int64_t>(cached_.size()), static_cast<int64_t>(prompt.size()), reuse);
  }
  return reuse;
}

Result<GenerationResult> Generator::Generate(std::span<const int32_t> prompt, const GenerateOptions& options) {
  const auto start = Clock::now();
  TRY(options.sampling.Validate());
  TRY(options.speculative.Validate());
  const bool mtp = options.speculative.enabled() && options.speculative.type == SpeculativeType::kMtp;
  if (mtp) TRY(CheckMtpDrafter(session_.runner()));
  if (prompt.empty()) return Error(ErrorCode::kInvalidArgument, "the prompt is empty: give at least one token");
  if (options.max_new_tokens < 0) {
    return Error(ErrorCode::kInvalidArgument, "max tokens must be >= 0, got " + std::to_string(options.max_new_tokens));
  }
  if (!options.stop_strings.empty() && !tokenizer_) {
    return Error(ErrorCode::kInvalidArgument, "stop strings need the model's tokenizer (tokenizer.json)");
  }
  const int64_t context = session_.program().max_context;
  if (static_cast<int64_t>(prompt.size()) > context) {
    return Error(ErrorCode::kOutOfRange, "the prompt has " + std::to_string(prompt.size()) +
                                             " tokens, more than the context of " + std::to_string(context) +
                                             " tokens; raise --ctx or shorten the prompt");
  }

  GenerationResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  Result<int64_t> reused = Prefill(prompt, options);
  if (!reused.has_value()) {
    Reset();
    return reused.error();
  }
  result.reused_tokens = *reused;
  result.prefilled_tokens = static_cast<int64_t>(cached_.size());
  result.prefill_seconds = SecondsSince(start);
  if (Cancelled(options)) {
    // A partly prefilled prompt is still a valid prefix of the cache.
    result.stop_reason = StopReason::kCancelled;
    return result;
  }
  if (options.on_prefilled) options.on_prefilled();

  Sampler sampler(options.sampling);
  TokenStream stream(options, tokenizer_, result);
  std::optional<OutputConstraint> constraint;
  if (options.constraint) constraint.emplace(options.constraint);
  // Prompt and generated tokens, for the repetition penalty's window.
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  history.reserve(prompt.size() + static_cast<size_t>(options.max_new_tokens));
  std::vector<float> raw;
  std::optional<Clock::time_point> decode_start;

  // Takes a sampled token: records, streams and checks it. `held` is the number of positions
  // the cache holds before it (the token is not in the cache yet). False when generation ends
  // with it (stop_reason set), true when the next step should run.
  auto accept = [&](GeneratedToken& token, int64_t held) -> bool {
    history.push_back(token.id);
    if (result.tokens.empty()) {
      result.first_token_seconds = SecondsSince(start);
      decode_start = Clock::now();
    }
    if (!stream.Accept(token)) return false;
    if (constraint && constraint->Terminated()) {  // the grammar's end (with --ignore-eos too)
      result.stop_reason = StopReason::kEos;
      return false;
    }
    if (held >= context) {
      result.stop_reason = StopReason::kContextFull;
      return false;
    }
    if (Cancelled(options)) {
      result.stop_reason = StopReason::kCancelled;
      return false;
    }
    return true;
  };
  // Draws a token from one row of logits (edited in place by the constraint and the penalty).
  auto sample = [&](std::span<float> row, GeneratedToken& token) -> Status {
    token.index = static_cast<int64_t>(result.tokens.size());
    if (options.keep_logits) result.logits.insert(result.logits.end(), row.begin(), row.end());
    if (options.top_logprobs > 0) {
      token.top_logprobs = TopLogprobs(row, options.top_logprobs);
      raw.assign(row.begin(), row.end());  // the penalty edits the row
    }
    if (constraint) TRY(constraint->Mask(row));
    token.id = sampler.Sample(row, history);
    if (constraint) TRY(constraint->Accept(token.id));
    if (options.top_logprobs > 0) token.logprob = Logprob(raw, token.id);
    return Status::Ok();
  };

  const bool speculate = options.speculative.enabled();
  const bool on_device = options.decode_depth > 0 && session_.SupportsDecodeOnDevice() && !speculate &&
                         !options.sampling.penalized() && options.top_logprobs == 0 && !options.keep_logits;
  result.stop_reason = StopReason::kMaxTokens;
  if (options.max_new_tokens == 0) {
    stream.Finish();
    return result;
  }
  if (Cancelled(options)) {
    result.stop_reason = StopReason::kCancelled;
    stream.Finish();
    return result;
  }
  auto fail = [&](const Error& error) -> Result<GenerationResult> {
    Reset();
    return error;
  };
  // The first token comes from the prefill's logits.
  GeneratedToken first;
  if (Status sampled = sample(logits_, first); !sampled.ok()) return fail(sampled.error());
  bool more = accept(first, session_.length());
  int32_t pending = first.id;  // sampled, not yet in the cache
  if (more && on_device) {
    // Every later token is sampled on the device; each one handed back means the step that
    // produced it ran, i.e. the token it fed is now in the cache.
    int32_t fed = pending;
    DeviceSampling sampling{options.sampling.temperature, options.sampling.top_k, options.sampling.top_p, options.sampling.min_p,
                            options.sampling.seed};
    const int64_t steps = options.max_new_tokens - static_cast<int64_t>(result.tokens.size());
    // A constraint masks each draw on the device; its matcher follows the tokens here.
    Status constraint_status = Status::Ok();
    Runner::AllowedTokensFn allowed;
    if (constraint) allowed = [&](std::span<uint64_t> bits) { return constraint->FillAllowed(bits); };
    auto decoded = session_.DecodeOnDevice(fed, sampling, steps, options.decode_depth, [&](const SampledToken& sampled) {
      cached_.push_back(fed);
      ++result.decode_steps;
      fed = sampled.id;
      if (constraint) {
        constraint_status = constraint->Accept(sampled.id);
        if (!constraint_status.ok()) return false;
      }
      GeneratedToken next;
      next.index = static_cast<int64_t>(result.tokens.size());
      next.id = sampled.id;
      next.logprob = sampled.logprob;
      return accept(next, session_.length());
    }, allowed);
    if (!decoded.has_value()) return fail(decoded.error());
    if (!constraint_status.ok()) return fail(constraint_status.error());
    // Ran out of steps with every token accepted: the context is full (or max tokens reached).
    if (static_cast<int64_t>(result.tokens.size()) < options.max_new_tokens && result.stop_reason == StopReason::kMaxTokens &&
        session_.length() >= context) {
      result.stop_reason = StopReason::kContextFull;
    }
    more = false;
  }
  // Host decoding: each step feeds the pending token and any drafted tokens (speculative.h); a
  // step without drafts is plain decoding.
  std::vector<int32_t> step_tokens, mtp_drafts;
  std::vector<float> rows, hidden_rows;
  const size_t width = hidden_.size();
  const int64_t vocab = session_.vocab_size();
  const int64_t tmax = session_.program().max_tokens;
  int draft_limit = options.speculative.draft_max;
  while (more) {
    const int64_t base = session_.length();
    step_tokens.assign(1, pending);
    if (speculate) {
      const int64_t room = std::min({static_cast<int64_t>(draft_limit), tmax - 1, context - base - 1,
                                     options.max_new_tokens - static_cast<int64_t>(result.tokens.size()) - 1});
      if (mtp) {
        mtp_drafts.clear();
        const MtpJob job{&session_.sequence(), pending, hidden_, room, &mtp_drafts};
        if (Status drafted = DraftWithMtp(session_.runner(), std::span<const MtpJob>(&job, 1)); !drafted.ok()) return fail(drafted.error());
        step_tokens.insert(step_tokens.end(), mtp_drafts.begin(), mtp_drafts.end());
        result.draft_tokens += static_cast<int64_t>(mtp_drafts.size());
      } else {
        auto drafted = DraftTokens(history, options.speculative, room, step_tokens);
        if (!drafted.has_value()) return fail(drafted.error());
        result.draft_tokens += *drafted;
      }
    }
    const int64_t drafted = static_cast<int64_t>(step_tokens.size()) - 1;
    rows.resize(static_cast<size_t>((drafted + 1) * vocab));
    hidden_rows.resize(static_cast<size_t>(drafted + 1) * width);
    if (Status stepped = session_.StepInto(step_tokens, /*all_positions=*/drafted > 0, rows, hidden_rows); !stepped.ok()) {
      return fail(stepped.error());
    }
    ++result.decode_steps;
    // Row i holds the distribution of the token after step_tokens[i].
    result.RecordDrafts(drafted);
    int64_t row = 0;
    for (;; ++row) {
      GeneratedToken next;
      const std::span<float> logits(rows.data() + row * vocab, static_cast<size_t>(vocab));
      if (Status sampled = sample(logits, next); !sampled.ok()) return fail(sampled.error());
      more = accept(next, base + row + 1);
      pending = next.id;
      if (!more || row == drafted || next.id != step_tokens[static_cast<size_t>(row + 1)]) break;
      result.RecordAcceptedDraft(row);
    }
    draft_limit = NextDraftLimit(options.speculative, draft_limit, drafted, std::min(row, drafted));
    // The next round continues from the state of the row that sampled the new pending token.
    std::copy_n(hidden_rows.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(row) * width), width, hidden_.begin());
    // Keep the pending token's predecessors: the fed token and the accepted drafts.
    if (row < drafted) {
      if (Status rewound = session_.Rewind(base + row + 1); !rewound.ok()) return fail(rewound.error());
    }
    cached_.insert(cached_.end(), step_tokens.begin(), step_tokens.begin() + row + 1);
  }
  stream.Finish();
  if (decode_start) result.decode_seconds = SecondsSince(*decode_start);
  return result;
}

}  // namespace kiln
