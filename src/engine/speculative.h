// Speculative decoding: draft tokens cheaply, verify them in one target step.
//
// A round feeds the target the pending token x and k drafted tokens d1..dk in one step with the
// logits of every row: row i is the distribution of the token after d_i (row 0 after x). The
// token after x is sampled from row 0 with the request's own sampler; while it equals the next
// draft, that draft is accepted and the next row is sampled; the first sampled token that differs
// (or, when all k match, the token sampled from row k) ends the round. So a round emits 1 to k+1
// tokens for one target step, and the cache keeps x and the accepted drafts (the sequence is
// rewound past the first rejection).
//
// Lossless: every emitted token is drawn from the same distribution, with the same sampler state
// and random draw, as plain decoding would draw it (sample-and-compare; for a deterministic
// drafter this is the accept-with-probability-p(d) rule of docs/speculative.md). At temperature
// 0 the output is token-identical to plain greedy decoding; at any temperature with a seed it is
// the same sequence as plain decoding with that seed, up to floating-point differences between a
// multi-row verify step and one-row decode steps.
//
// Drafters: prompt lookup (kNgram): the longest suffix of the tokens so far (prompt and output,
// ngram_max down to ngram_min tokens) that occurred before, most recent occurrence first, and the
// tokens that followed it. No model, no state. A draft model (kDraft, draft_model.h): a smaller
// model with the same vocabulary decodes greedily from the same tokens. An MTP assistant (kMtp,
// mtp_draft.h): Gemma 4's drafter compiled into the target's Program, continuing from the
// target's hidden state and reading its cache.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln {

enum class SpeculativeType { kNone, kNgram, kDraft, kMtp };
// "none", "ngram", "draft", "mtp".
const char* SpeculativeTypeName(SpeculativeType type);
Result<SpeculativeType> ParseSpeculativeType(const std::string& name);

// Where kDraft's tokens come from (draft_model.h). Not thread-safe; one generation at a time.
class Drafter {
 public:
  virtual ~Drafter() = default;
  // Appends to `drafts` up to `max` tokens likely to follow `history` (the prompt and every
  // token generated so far); returns how many.
  virtual Result<int64_t> Draft(std::span<const int32_t> history, int64_t max, std::vector<int32_t>& drafts) = 0;
};

struct SpeculativeOptions {
  SpeculativeType type = SpeculativeType::kNone;
  Drafter* drafter = nullptr;  // kDraft: not owned
  int draft_max = 8;   // most tokens drafted per round
  int ngram_max = 3;   // longest suffix looked up
  int ngram_min = 1;   // shortest suffix looked up
  // Drafts per round adapt to the acceptance so far: after a round whose drafts were all
  // accepted the limit grows by 2 (up to draft_max), after a rejection it shrinks by 1 (down to
  // 1). Only speed changes, never the output.
  bool adaptive = true;

  bool enabled() const { return type != SpeculativeType::kNone && draft_max > 0; }
  // kInvalidArgument naming the option out of range.
  Status Validate() const;
};

// The draft limit of the next round after a round that drafted `drafted` tokens under `limit`
// and had `accepted` of them accepted (SpeculativeOptions::adaptive).
int NextDraftLimit(const SpeculativeOptions& options, int limit, int64_t drafted, int64_t accepted);

// Drafts by `options.type`: prompt lookup, or the drafter.
Result<int64_t> DraftTokens(std::span<const int32_t> history, const SpeculativeOptions& options, int64_t max,
                            std::vector<int32_t>& drafts);

// Prompt lookup: appends to `drafts` up to `max` tokens that followed the most recent earlier
// occurrence of the longest suffix of `history` (between ngram_max and ngram_min tokens long).
// Returns the number appended (0: no suffix recurs).
int64_t DraftByPromptLookup(std::span<const int32_t> history, const SpeculativeOptions& options, int64_t max,
                            std::vector<int32_t>& drafts);

}  // namespace kiln
