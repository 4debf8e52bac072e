// Drafting with a Gemma 4 MTP assistant compiled into the target's Program (Runner::Draft,
// docs/speculative.md §2.1).
//
// A round drafts from the sequence's pending token x_t (sampled, not yet in its cache) and the
// target's final-normed hidden state h of the row that sampled it: each draft step feeds the
// last token and hidden state at the same position t and takes the argmax; the next step feeds
// that token and the drafter's own next hidden state. Nothing enters any cache, so a round leaves
// every sequence as it was. The caller keeps h: after the verify step it is the target's hidden
// state of the row that sampled the new pending token (Runner::Run with a hidden buffer).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/runner.h"

namespace kiln {

struct MtpJob {
  Sequence* sequence = nullptr;
  int32_t token = 0;             // the pending token, at position sequence->length()
  std::span<const float> hidden; // the target's hidden state that produced it (Runner::hidden_size())
  int64_t max = 0;               // most tokens to draft
  std::vector<int32_t>* drafts = nullptr;  // drafts are appended
};

// Drafts for every job (distinct sequences of `runner`), batched: one drafter step per draft
// position over the jobs still drafting.
Status DraftWithMtp(Runner& runner, std::span<const MtpJob> jobs);

// OK when `runner`'s program has an MTP drafter; else kInvalidArgument saying how to load one (the
// generator's and the scheduler's refusal of speculative type mtp).
Status CheckMtpDrafter(const Runner& runner);

// Whether `path` is an MTP assistant, which drafts compiled into its target
// (LoadOptions::assistant) rather than as a model of its own: a checkpoint directory whose
// config.json says so, or a GGUF file of a drafter architecture (gemma4-assistant).
bool IsMtpAssistant(const std::string& path);

}  // namespace kiln
