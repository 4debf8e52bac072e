// Generation on a Session: prefill with prefix reuse, sample, stop, stream.
//
//   TRY_ASSIGN(Session session, model->NewSession());
//   Generator generator(session, tokenizer);           // tokenizer may be null (ids only)
//   GenerateOptions options;
//   options.max_new_tokens = 128;
//   options.stop_token_ids = text.stop_token_ids;
//   options.on_token = [](const GeneratedToken& t) { std::cout << t.text << std::flush; };
//   TRY_ASSIGN(GenerationResult result, generator.Generate(prompt_ids, options));
//   // result.stop_reason: eos | stop_string | max_tokens | context_full | cancelled
//
// Generate(prompt) takes the WHOLE sequence (for a chat: every turn so far, rendered). The
// Generator remembers which tokens its Session's cache holds; it keeps the longest common
// prefix of those and `prompt` and prefills only the rest. A sliding-window cache cannot always
// go back that far (Session::Rewind); then the whole prompt is prefilled again. At least the
// prompt's last token is always run, because its logits choose the first new token.
//
// Prefill: a suffix of at most `prefill_chunk_threshold` tokens runs in steps of the Program's
// Tmax; a longer one in chunks of `prefill_chunk` (both default to Tmax, and neither can exceed
// it). Only the last position's logits are computed.
//
// Decode: one token per step into a buffer owned by the Generator (no allocation per token
// beyond streamed text). Each step's logits are sampled (sampler.h) on the host, or, where the
// backend can (decode_depth), on the device with several steps in flight: the token a step
// samples feeds the next step there, the host receives tokens as they complete, and steps run
// past a stop are discarded (the cache is rolled back to the last accepted token). The first
// token after the prompt is always sampled on the host, from the prefill's logits; on the
// device the draws come from the device sampler's generator (same seed, other numbers than the
// host's). Every token is checked
// against, in order: the stop ids (unless ignore_eos; the id is kept in `tokens` and not
// detokenized), the stop strings (matched across token boundaries on the detokenized text; the
// text stops before the stop string), max_new_tokens, and the context (a full cache ends with
// context_full). `cancel`, polled before every step (prefill chunks included), ends with
// cancelled.
//
// Errors: kOutOfRange when the prompt alone does not fit the context; kInvalidArgument for
// invalid sampling options, an empty prompt, or stop strings without a tokenizer; session errors
// (bad token ids) pass through. After an error the cache is forgotten (the next call prefills
// everything). Not thread-safe; the Session and tokenizer must outlive the Generator.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/output_constraint.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace kiln {

enum class StopReason { kEos, kStopString, kMaxTokens, kContextFull, kCancelled };
// "eos", "stop_string", "max_tokens", "context_full", "cancelled".
const char* StopReasonName(StopReason reason);

struct GeneratedToken {
  int32_t id = 0;
  std::string text;  // text that became final with this token (may be empty)
  int64_t index = 0;  // 0 for the first generated token
  std::vector<TokenLogprob> top_logprobs;  // when GenerateOptions::top_logprobs > 0
  float logprob = 0.0f;                    // of `id` under the model (before sampling filters)
};

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  SamplingOptions sampling;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;  // run to max_new_tokens (benchmarks, reference comparisons)
  std::vector<std::string> stop_strings;
  int64_t prefill_chunk = 0;            // 0 = the Program's Tmax
  int64_t prefill_chunk_threshold = 0;  // 0 = the Program's Tmax
  bool skip_special_tokens = true;      // in streamed text
  int64_t top_logprobs = 0;             // > 0: report this many log-probabilities per token
  bool keep_logits = false;             // GenerationResult::logits: every sampled step's logits
  const std::atomic<bool>* cancel = nullptr;
  // Structured output: only tokens the grammar allows are sampled (output_constraint.h). On the
  // device each draw is masked there, the mask of step k+1 computed on the host from token k
  // while step k+1 runs (one step in flight ahead of its mask, whatever decode_depth says).
  ConstraintSpec constraint;
  // Steps kept in flight when the backend samples on the device (Session::DecodeOnDevice): the
  // CUDA backend, when neither the repetition penalty, top_logprobs nor keep_logits need the
  // logits on the host. 0 = always sample on the host.
  int decode_depth = 4;
  // Speculative decoding (speculative.h): drafted tokens verified in one step. Lossless; the
  // device-sampling path is not taken.
  SpeculativeOptions speculative;
  // Called for every generated token; a last call with id -1 may carry text held back until
  // the end (a partial character, or the start of a stop string that never completed).
  std::function<void(const GeneratedToken&)> on_token;
  // Called once after the prompt is prefilled, before the first token is sampled.
  std::function<void()> on_prefilled;
  // For a prompt that takes more than one prefill step (progress for long prompts): called
  // before the first step and after each, with `done` of the prompt's `total` tokens in the
  // cache, `reused` of them taken from it before the first step.
  std::function<void(int64_t done, int64_t total, int64_t reused)> on_prefill_progress;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids, including a final stop id
  std::string text;             // the streamed text, concatenated
  StopReason stop_reason = StopReason::kMaxTokens;
  std::string stop_string;      // which one matched (kStopString)
  int64_t prompt_tokens = 0;    // the whole prompt
  int64_t reused_tokens = 0;    // of those, taken from the cache (not prefilled)
  int64_t prefilled_tokens = 0;  // of those, in the cache when the prefill ended: all of them,
                                 // unless it was cancelled part way (reused ones included)
  double prefill_seconds = 0;   // prompt suffix prefill
  double first_token_seconds = 0;  // from the call to the first token (time to first token)
  double decode_seconds = 0;    // the decode steps after the first token
  int64_t decode_steps = 0;     // steps run after the prefill
  int64_t draft_tokens = 0;     // speculative decoding: tokens drafted
  int64_t accepted_draft_tokens = 0;  // of those, accepted (each saves a step)
  // Per draft position i (the (i + 1)-th draft of a round): rounds that drafted that far, and
  // of those, rounds whose drafts were accepted up to it.
  std::vector<int64_t> drafted_by_position, accepted_by_position;
  // A round is counted as it goes (a sample can end the request before the round is over): its
  // drafts when it starts, then each draft accepted, in order, as it is taken.
  void RecordDrafts(int64_t drafted);
  void RecordAcceptedDraft(int64_t position) {
    ++accepted_draft_tokens;
    ++accepted_by_position[static_cast<size_t>(position)];
  }
  // [tokens.size(), vocab] row-major when keep_logits: the logits each token was sampled from
  // (before the repetition penalty).
  std::vector<float> logits;
};

class Generator {
 public:
  // `tokenizer` may be null: text is then empty and stop strings are refused.
  Generator(Session& session, const tokenizer::Tokenizer* tokenizer);

  Result<GenerationResult> Generate(std::span<const int32_t> prompt, const GenerateOptions& options);

  // Forgets the cached sequence: the next Generate prefills everything.
  void Reset();
  // The tokens whose keys and values the session holds, in order.
  const std::vector<int32_t>& cached_tokens() const { return cached_; }
  Session& session() { return session_; }

 private:
  // Rewinds to the longest reusable prefix of `prompt` and prefills the rest; logits_ then
  // holds the last position's logits. Returns the number of reused tokens.
  Result<int64_t> Prefill(std::span<const int32_t> prompt, const GenerateOptions& options);

  Session& session_;
  const tokenizer::Tokenizer* tokenizer_;
  std::vector<int32_t> cached_;
  std::vector<float> logits_;  // one row of vocab floats
  // With an MTP drafter: the target's final-normed hidden state of the row that sampled the
  // pending token (what the next draft round continues from); empty otherwise.
  std::vector<float> hidden_;
};

}  // namespace kiln
