// The scheduler's speculative decoding (scheduler.h, docs/speculative.md): how many drafts a
// request's next step may carry, the batched drafts of the draft model and the MTP assistant, and
// the verification of a speculative step's rows.
#include "engine/scheduler.h"

#include <algorithm>

#include "engine/mtp_draft.h"

namespace kiln {

int64_t Scheduler::DraftRoom(const Active& active, int64_t room) const {
  if (!active.speculative.enabled()) return 0;
  // The step's last row samples a token too: max tokens and the context bound the drafts.
  room = std::min({room, static_cast<int64_t>(active.draft_limit), program_.max_context - active.fed - 1,
                   active.request.options.max_new_tokens - static_cast<int64_t>(active.result.tokens.size()) - 1});
  return std::max<int64_t>(room, 0);
}

bool Scheduler::DraftWithModels(const std::vector<Active*>& decoding) {
  // Each request's room as the step will leave it if every decoding request joins it in order
  // (the loop in StepOnce): the drafts are cut to what the step really takes.
  std::vector<DraftModel::Job> jobs;
  std::vector<MtpJob> mtp_jobs;
  std::vector<Active*> owners, mtp_owners;
  int64_t budget = program_.max_tokens;
  for (Active* active : decoding) active->model_drafts.clear();
  for (Active* active : decoding) {
    if (budget == 0) break;
    const int64_t room = DraftRoom(*active, budget - 1);
    budget -= 1 + room;
    if (room == 0) continue;
    if (active->speculative.type == SpeculativeType::kDraft && options_.draft_model != nullptr) {
      if (!active->draft_sequence) active->draft_sequence = options_.draft_model->NewSequence();
      jobs.push_back({active->draft_sequence.get(), active->tokens, room, &active->model_drafts,
                      static_cast<int64_t>(active->request.prompt.size())});
      owners.push_back(active);
    } else if (active->speculative.type == SpeculativeType::kMtp && !active->hidden.empty()) {
      mtp_jobs.push_back({active->sequence.get(), active->tokens[static_cast<size_t>(active->fed)], active->hidden, room, &active->model_drafts});
      mtp_owners.push_back(active);
    }
  }
  bool all_ok = true;
  if (!jobs.empty()) {
    // The draft model catches up a new request's prompt one chunk per step, as the target prefills.
    Status drafted = options_.draft_model->Draft(jobs, /*catch_up_steps=*/1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.draft_cached_tokens = options_.draft_model->cached_tokens();
    }
    if (!drafted.ok()) {
      for (Active* active : owners) Finish(*active, drafted.error());
      all_ok = false;
    }
  }
  if (!mtp_jobs.empty()) {
    Status drafted = DraftWithMtp(runner_, mtp_jobs);
    if (!drafted.ok()) {
      for (Active* active : mtp_owners) Finish(*active, drafted.error());
      all_ok = false;
    }
  }
  return all_ok;
}

int64_t Scheduler::Draft(Active& active, int64_t room) {
  active.step_tokens.assign(1, active.tokens[static_cast<size_t>(active.fed)]);
  room = DraftRoom(active, room);
  int64_t drafted = 0;
  if (active.speculative.type == SpeculativeType::kDraft || active.speculative.type == SpeculativeType::kMtp) {
    // DraftWithModels', cut to the room
    drafted = std::min(room, static_cast<int64_t>(active.model_drafts.size()));
    active.step_tokens.insert(active.step_tokens.end(), active.model_drafts.begin(), active.model_drafts.begin() + drafted);
  } else if (room > 0) {
    drafted = DraftByPromptLookup(active.tokens, active.speculative, room, active.step_tokens);
  }
  active.model_drafts.clear();
  active.result.draft_tokens += drafted;
  return drafted;
}

Status Scheduler::Verify(Active& active, int64_t base, std::span<float> rows, std::span<const float> hidden) {
  const int64_t vocab = runner_.vocab_size();
  const int64_t drafted = static_cast<int64_t>(active.step_tokens.size()) - 1;
  // Counted as the round goes: a sample can end the request, and its result goes out with it.
  active.result.RecordDrafts(drafted);
  int64_t row = 0;
  for (;; ++row) {
    // The cache holds every token before the one this row samples.
    active.fed = base + row + 1;
    TRY_ASSIGN(const bool more, Sample(active, rows.subspan(static_cast<size_t>(row * vocab), static_cast<size_t>(vocab))));
    if (!more) return Status::Ok();  // ended (its sequence is released)
    if (row == drafted || active.tokens.back() != active.step_tokens[static_cast<size_t>(row + 1)]) break;
    active.result.RecordAcceptedDraft(row);
    --active.result.decode_steps;  // Take counts a step per token; this step emits several
  }
  active.draft_limit = NextDraftLimit(active.speculative, active.draft_limit, drafted, std::min(row, drafted));
  // An MTP drafter continues from the state of the row that sampled the new pending token.
  if (!hidden.empty()) active.hidden.assign(hidden.begin() + row * static_cast<int64_t>(active.hidden.size()),
                                            hidden.begin() + (row + 1) * static_cast<int64_t>(active.hidden.size()));
  // Drop the rejected drafts' positions: the pending token is fed next step.
  if (active.sequence->length() > active.fed) TRY(active.sequence->Rewind(active.fed));
  return Status::Ok();
}

}  // namespace kiln
