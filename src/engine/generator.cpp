#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

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
  const int64_t suffix = static_cast<int64_t>(prompt.size()) - reuse;
  const int64_t threshold = options.prefill_chunk_threshold > 0 ? options.prefill_chunk_threshold : tmax;
  int64_t chunk = suffix <= threshold ? tmax : (options.prefill_chunk > 0 ? options.prefill_chunk : tmax);
  chunk = std::clamp<int64_t>(chunk, 1, tmax);
  for (int64_t begin = reuse; begin < static_cast<int64_t>(prompt.size()); begin += chunk) {
    if (Cancelled(options)) return reuse;  // the caller sees cancel and stops
    const int64_t count = std::min<int64_t>(chunk, static_cast<int64_t>(prompt.size()) - begin);
    const auto part = prompt.subspan(static_cast<size_t>(begin), static_cast<size_t>(count));
    TRY(session_.StepInto(part, /*all_positions=*/false, logits_));
    cached_.insert(cached_.end(), part.begin(), part.end());
  }
  return reuse;
}

Result<GenerationResult> Generator::Generate(std::span<const int32_t> prompt, const GenerateOptions& options) {
  const auto start = Clock::now();
  TRY(options.sampling.Validate());
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

  // Takes a sampled token: records, streams and checks it. False when generation ends with it
  // (stop_reason set), true when the next step should run.
  auto accept = [&](GeneratedToken& token) -> bool {
    history.push_back(token.id);
    if (result.tokens.empty()) {
      result.first_token_seconds = SecondsSince(start);
      decode_start = Clock::now();
    }
    if (!stream.Accept(token)) return false;
    if (session_.length() >= context) {
      result.stop_reason = StopReason::kContextFull;
      return false;
    }
    if (Cancelled(options)) {
      result.stop_reason = StopReason::kCancelled;
      return false;
    }
    return true;
  };

  const bool on_device = options.decode_depth > 0 && session_.SupportsDecodeOnDevice() && !options.constraint &&
                         options.sampling.repetition_penalty == 1.0f && options.top_logprobs == 0 && !options.keep_logits;
  result.stop_reason = StopReason::kMaxTokens;
  bool more = options.max_new_tokens > 0;
  if (more && Cancelled(options)) {
    result.stop_reason = StopReason::kCancelled;
    more = false;
  }
  while (more) {
    GeneratedToken token;
    token.index = static_cast<int64_t>(result.tokens.size());
    if (options.keep_logits) result.logits.insert(result.logits.end(), logits_.begin(), logits_.end());
    if (options.top_logprobs > 0) token.top_logprobs = TopLogprobs(logits_, options.top_logprobs);
    if (options.top_logprobs > 0) raw.assign(logits_.begin(), logits_.end());  // the penalty edits logits_
    if (constraint) {
      Status masked = constraint->Mask(logits_);
      if (!masked.ok()) {
        Reset();
        return masked.error();
      }
    }
    token.id = sampler.Sample(logits_, history);
    if (constraint) TRY(constraint->Accept(token.id));
    if (options.top_logprobs > 0) token.logprob = Logprob(raw, token.id);
    if (!accept(token)) break;
    if (constraint && constraint->Terminated()) {  // the grammar's end (with --ignore-eos too)
      result.stop_reason = StopReason::kEos;
      break;
    }
    if (on_device) {
      // Every later token is sampled on the device; each one handed back means the step that
      // produced it ran, i.e. the token it fed is now in the cache.
      int32_t fed = token.id;
      DeviceSampling sampling{options.sampling.temperature, options.sampling.top_k, options.sampling.top_p, options.sampling.min_p,
                              options.sampling.seed};
      const int64_t steps = options.max_new_tokens - static_cast<int64_t>(result.tokens.size());
      auto decoded = session_.DecodeOnDevice(fed, sampling, steps, options.decode_depth, [&](const SampledToken& sampled) {
        cached_.push_back(fed);
        ++result.decode_steps;
        fed = sampled.id;
        GeneratedToken next;
        next.index = static_cast<int64_t>(result.tokens.size());
        next.id = sampled.id;
        next.logprob = sampled.logprob;
        return accept(next);
      });
      if (!decoded.has_value()) {
        Reset();
        return decoded.error();
      }
      // Ran out of steps with every token accepted: the context is full (or max tokens reached).
      if (static_cast<int64_t>(result.tokens.size()) < options.max_new_tokens && result.stop_reason == StopReason::kMaxTokens &&
          session_.length() >= context) {
        result.stop_reason = StopReason::kContextFull;
      }
      break;
    }
    const int32_t id = token.id;
    Status stepped = session_.StepInto(std::span<const int32_t>(&id, 1), /*all_positions=*/false, logits_);
    if (!stepped.ok()) {
      Reset();
      return stepped.error();
    }
    cached_.push_back(id);
    ++result.decode_steps;
  }
  stream.Finish();
  if (decode_start) result.decode_seconds = SecondsSince(*decode_start);
  return result;
}

}  // namespace kiln
