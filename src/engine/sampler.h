// Sampling the next token from a step's logits, on the CPU.
//
//   SamplingOptions options{.temperature = 0.7f, .top_k = 64, .top_p = 0.95f, .seed = 42};
//   TRY(options.Validate());
//   Sampler sampler(options);
//   int32_t next = sampler.Sample(logits, /*history=*/sequence);
//
// The pipeline follows transformers' generate() order, so a seeded run means the same thing
// here as there (the random draws themselves differ):
//   1. repetition penalty over the last `repetition_window` tokens of `history` (HF/CTRL rule:
//      a positive logit is divided by the penalty, a negative one multiplied);
//   1b. presence and frequency penalties over the generated tokens (OpenAI's rule: a token that
//      occurred c > 0 times loses c x frequency_penalty + presence_penalty from its logit);
//   2. temperature == 0: greedy, the highest logit (ties: the lowest id). Stop here.
//   3. temperature: logits / T, softmax;
//   4. top-k: keep the k most likely (0 = off);
//   5. top-p: keep the most likely tokens until their mass reaches p (at least one);
//   6. min-p: drop tokens whose probability is below min_p x the most likely one's;
//   7. draw from what is left, renormalized.
// Steps 4-6 never look at the whole sorted vocabulary: candidates are found by partial sorts
// that widen only while the nucleus needs more tokens.
//
// Random numbers: a 64-bit Mersenne Twister seeded with `seed` and a uniform double built from
// its top 53 bits, both fully specified, so a seed gives the same tokens on every platform and
// standard library. A Sampler is not thread-safe; one per sequence. After construction it
// allocates only when a nucleus needs more candidates than any before it.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "core/status.h"

namespace kiln {

struct SamplingOptions {
  float temperature = 0.0f;         // >= 0; 0 = greedy
  int64_t top_k = 0;                // >= 0; 0 = no limit
  float top_p = 1.0f;               // in (0, 1]; 1 = off
  float min_p = 0.0f;               // in [0, 1); 0 = off
  float repetition_penalty = 1.0f;  // > 0; 1 = off
  int64_t repetition_window = 64;   // tokens of history the penalty looks at (0 = all)
  uint64_t seed = 0;
  float presence_penalty = 0.0f;    // in [-2, 2]; 0 = off; once per distinct generated token
  float frequency_penalty = 0.0f;   // in [-2, 2]; 0 = off; per occurrence in the generated tokens

  // kInvalidArgument naming the field and the allowed range ("temperature must be >= 0, got -1").
  Status Validate() const;
  bool greedy() const { return temperature == 0.0f; }
  // Whether any penalty reads the sequence's tokens (then the logits must reach the host).
  bool penalized() const { return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f; }
};

// One candidate of the final distribution: a token and its probability after every filter.
struct Candidate {
  int32_t id = 0;
  float probability = 0.0f;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);

  // Picks the next token. `logits` (vocab floats) is modified in place by the penalties;
  // `history` is the sequence so far: its first `prompt_tokens` are the prompt (which the
  // presence and frequency penalties skip), the rest were generated.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> history, size_t prompt_tokens = 0);

  // The distribution step 7 draws from, most likely first (one candidate of probability 1 when
  // greedy). For tests and logprob reports; applies the penalties to `logits` like Sample.
  std::vector<Candidate> Distribution(std::span<float> logits, std::span<const int32_t> history, size_t prompt_tokens = 0);

  const SamplingOptions& options() const { return options_; }

 private:
  void ApplyRepetitionPenalty(std::span<float> logits, std::span<const int32_t> history);
  void ApplyPresenceAndFrequencyPenalties(std::span<float> logits, std::span<const int32_t> generated);
  void ApplyPenalties(std::span<float> logits, std::span<const int32_t> history, size_t prompt_tokens);
  // Fills candidates_ with the filtered distribution (steps 3-6), most likely first.
  void Filter(std::span<const float> logits);
  double NextUniform();  // in [0, 1)

  SamplingOptions options_;
  std::mt19937_64 engine_;
  std::vector<std::pair<float, int32_t>> scratch_;  // (scaled logit, id)
  std::vector<Candidate> candidates_;
  std::vector<int32_t> penalized_;  // distinct ids of the penalty window; sorted generated ids
};

// Index of the largest value (the lowest index among ties); -1 when empty.
int32_t ArgMax(std::span<const float> values);

// log-softmax of `logits` for the `count` most likely tokens, most likely first, plus the
// log-probability of `chosen`. For --top-logprobs reports.
struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};
std::vector<TokenLogprob> TopLogprobs(std::span<const float> logits, int64_t count);
float Logprob(std::span<const float> logits, int32_t id);

}  // namespace kiln
