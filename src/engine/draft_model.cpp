#include "engine/draft_model.h"

#include <algorithm>

namespace kiln {

namespace {

int32_t Argmax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

}  // namespace

void DraftSequence::Reset() {
  sequence_.Release();
  tokens_.clear();
  prefix_settled_ = false;
}

Result<std::unique_ptr<DraftModel>> DraftModel::Create(std::unique_ptr<LoadedModel> model, int64_t target_vocab_size,
                                                       RunnerOptions options) {
  const int64_t vocab = model->architecture().vocab_size();
  if (vocab != target_vocab_size) {
    return Error(ErrorCode::kInvalidArgument, "the draft model " + model->source() + " has a vocabulary of " + std::to_string(vocab) +
                                                  " tokens, the target's has " + std::to_string(target_vocab_size) +
                                                  "; a draft model must share the target's tokenizer");
  }
  TRY_ASSIGN(std::unique_ptr<Runner> runner, model->NewRunner(options));
  return std::unique_ptr<DraftModel>(new DraftModel(std::move(model), std::move(runner)));
}

Status DraftModel::Draft(std::span<const Job> jobs, int64_t catch_up_steps) {
  const Program& program = runner_->program();
  const int64_t context = program.max_context;
  const int64_t tmax = program.max_tokens;
  const int64_t smax = program.max_sequences;
  const int64_t vocab = runner_->vocab_size();
  KvBlockPool& pool = runner_->pool();
  if (logits_.size() < static_cast<size_t>(smax * vocab)) logits_.resize(static_cast<size_t>(smax * vocab));

  struct Work {
    const Job* job;
    int64_t max;           // drafts this job may take
    int64_t drafted = 0;
    bool stopped = false;  // no blocks, or done
    int64_t unfed() const { return static_cast<int64_t>(job->history.size() - job->sequence->tokens_.size()); }
  };
  std::vector<Work> work;
  work.reserve(jobs.size());
  for (const Job& job : jobs) {
    const int64_t length = static_cast<int64_t>(job.history.size());
    // The history and every draft but the last take a position of the draft model's context.
    const int64_t max = std::min(job.max, context - length);
    if (max <= 0 || length == 0) continue;
    DraftSequence& s = *job.sequence;
    const int64_t prompt = std::min(job.prompt_length, length);
    if (s.tokens_.empty() && prompt > 0 && !s.prefix_settled_) {
      // A new sequence (or one that started over) takes its prompt's cached prefix if there is one.
      const int64_t reused = prefixes_->Adopt(job.history.first(static_cast<size_t>(prompt)), s.sequence_);
      s.tokens_.assign(job.history.begin(), job.history.begin() + reused);
      s.prefix_settled_ = reused > 0 && reused == prefixes_->CachedLength(static_cast<size_t>(prompt));
      cached_tokens_ += reused;
    }
    // Keep the longest common prefix, but run at least the history's last token: its logits
    // give the first draft.
    const int64_t held = static_cast<int64_t>(s.tokens_.size());
    int64_t common = std::mismatch(s.tokens_.begin(), s.tokens_.end(), job.history.begin(), job.history.end()).first - s.tokens_.begin();
    common = std::min(common, length - 1);
    if (common < held) {
      if (s.sequence_.CanRewind(common)) {
        TRY(s.sequence_.Rewind(common));
        s.tokens_.resize(static_cast<size_t>(common));
      } else {
        s.Reset();  // a sliding ring no longer holds the window before `common`
      }
    }
    work.push_back({&job, max});
  }
  // Shortest unfed history first: decoding sequences (one or two tokens) are never held up by one
  // that catches up a long prompt.
  std::stable_sort(work.begin(), work.end(), [](const Work& a, const Work& b) { return a.unfed() < b.unfed(); });

  std::vector<BatchEntry> batch;
  std::vector<Work*> owners;
  std::vector<int32_t> fed;  // phase two's one token per entry
  fed.reserve(static_cast<size_t>(smax));
  std::vector<int64_t> claimed(static_cast<size_t>(pool.num_groups()), 0);
  auto fits = [&](const Sequence& sequence, int64_t end) {
    const std::vector<int64_t> needed = sequence.BlocksNeeded(end);
    for (size_t g = 0; g < needed.size(); ++g) {
      if (needed[g] + claimed[g] > pool.free_blocks(static_cast<int32_t>(g))) return false;
    }
    for (size_t g = 0; g < needed.size(); ++g) claimed[g] += needed[g];
    return true;
  };
  // Cached prefixes give their blocks back before a job goes without.
  auto fits_or_evict = [&](const Sequence& sequence, int64_t end) {
    while (!fits(sequence, end)) {
      if (!prefixes_->EvictOne()) return false;
    }
    return true;
  };
  // One step over `batch`; each entry's last token's argmax lands in ids[b]: drawn greedily on
  // the device where the backend samples (only the ids come back), else from the logits on the
  // host. A failed step leaves the caches of its sequences unknown: they are forgotten.
  std::vector<int32_t> ids;
  std::vector<RowSampling> greedy;
  std::vector<SampledToken> sampled;
  auto run = [&]() -> Status {
    Status ran = Status::Ok();
    ids.resize(batch.size());
    if (runner_->SupportsRowSampling()) {
      greedy.assign(batch.size(), RowSampling{});
      sampled.resize(batch.size());
      ran = runner_->Run(batch, greedy, sampled);
      for (size_t b = 0; b < batch.size() && ran.ok(); ++b) ids[b] = sampled[b].id;
    } else {
      ran = runner_->Run(batch, std::span<float>(logits_.data(), batch.size() * static_cast<size_t>(vocab)));
      for (size_t b = 0; b < batch.size() && ran.ok(); ++b) {
        ids[b] = Argmax(std::span<const float>(logits_.data() + b * static_cast<size_t>(vocab), static_cast<size_t>(vocab)));
      }
    }
    if (!ran.ok()) {
      for (Work* w : owners) {
        w->job->sequence->Reset();
        w->stopped = true;
      }
    }
    return ran;
  };

  // 1. The unfed history, in steps of at most Tmax tokens and Smax sequences.
  for (int64_t step = 0; step < catch_up_steps; ++step) {
    batch.clear();
    owners.clear();
    std::fill(claimed.begin(), claimed.end(), 0);
    int64_t budget = tmax;
    for (Work& w : work) {
      if (w.stopped || w.drafted > 0 || budget == 0 || static_cast<int64_t>(batch.size()) == smax) continue;
      DraftSequence& s = *w.job->sequence;
      const int64_t take = std::min(w.unfed(), budget);
      if (!fits_or_evict(s.sequence_, s.sequence_.length() + take)) {
        w.stopped = true;  // no blocks: no drafts this time
        continue;
      }
      batch.push_back({&s.sequence_, w.job->history.subspan(s.tokens_.size(), static_cast<size_t>(take))});
      owners.push_back(&w);
      budget -= take;
    }
    if (batch.empty()) break;
    TRY(run());
    for (size_t b = 0; b < batch.size(); ++b) {
      Work& w = *owners[b];
      DraftSequence& s = *w.job->sequence;
      const int64_t before = static_cast<int64_t>(s.tokens_.size());
      s.tokens_.insert(s.tokens_.end(), batch[b].tokens.begin(), batch[b].tokens.end());
      // Right after the step that ran past the prompt's cached length (the sliding rings still
      // hold the window before it): cache it for the next sequence with this prompt. A sequence
      // that was past it already (its rings may have moved on) leaves it.
      const size_t prompt = static_cast<size_t>(std::min<int64_t>(w.job->prompt_length, static_cast<int64_t>(w.job->history.size())));
      const int64_t cached = prefixes_->CachedLength(prompt);
      if (!s.prefix_settled_ && prompt > 0 && static_cast<int64_t>(s.tokens_.size()) >= cached) {
        if (before < cached) TRY(prefixes_->Insert(w.job->history.first(prompt), s.sequence_));
        s.prefix_settled_ = true;
      }
      if (w.unfed() > 0) continue;  // more of its history next step
      w.job->drafts->push_back(ids[b]);
      w.drafted = 1;
    }
  }
  // 2. One step per draft position: each job feeds its last draft.
  while (true) {
    batch.clear();
    owners.clear();
    fed.clear();
    std::fill(claimed.begin(), claimed.end(), 0);
    for (Work& w : work) {
      if (w.stopped || w.drafted == 0 || w.drafted >= w.max || static_cast<int64_t>(batch.size()) == std::min(smax, tmax)) continue;
      DraftSequence& s = *w.job->sequence;
      if (!fits_or_evict(s.sequence_, s.sequence_.length() + 1)) {
        w.stopped = true;  // keeps the drafts it has
        continue;
      }
      fed.push_back(w.job->drafts->back());
      batch.push_back({&s.sequence_, std::span<const int32_t>(&fed.back(), 1)});
      owners.push_back(&w);
    }
    if (batch.empty()) break;
    TRY(run());
    for (size_t b = 0; b < batch.size(); ++b) {
      Work& w = *owners[b];
      w.job->sequence->tokens_.push_back(fed[b]);
      w.job->drafts->push_back(ids[b]);
      ++w.drafted;
    }
  }
  return Status::Ok();
}

Status CheckDraftTokenizer(const tokenizer::Tokenizer& target, const tokenizer::Tokenizer& draft, const std::string& draft_name) {
  const size_t size = std::min(target.vocab_size(), draft.vocab_size());
  for (size_t id = 0; id < size; ++id) {
    const auto token = static_cast<tokenizer::TokenId>(id);
    if (target.IdToPiece(token) == draft.IdToPiece(token)) continue;
    return Error(ErrorCode::kInvalidArgument, "the draft model " + draft_name + "'s tokenizer differs from the target's: token " +
                                                  std::to_string(id) + " is '" + std::string(draft.IdToPiece(token)) + "', the target's '" +
                                                  std::string(target.IdToPiece(token)) + "'; a draft model must share the target's tokenizer");
  }
  return Status::Ok();
}

Result<std::unique_ptr<ModelDrafter>> ModelDrafter::Create(std::unique_ptr<LoadedModel> model, int64_t target_vocab_size) {
  RunnerOptions options;
  options.kv_pool = KvPoolSize::ForSequences(model->program(), 1);
  TRY_ASSIGN(std::unique_ptr<DraftModel> draft, DraftModel::Create(std::move(model), target_vocab_size, options));
  return std::unique_ptr<ModelDrafter>(new ModelDrafter(std::move(draft)));
}

Result<int64_t> ModelDrafter::Draft(std::span<const int32_t> history, int64_t max, std::vector<int32_t>& drafts) {
  const size_t before = drafts.size();
  const DraftModel::Job job{sequence_.get(), history, max, &drafts};
  TRY(model_->Draft(std::span<const DraftModel::Job>(&job, 1)));
  return static_cast<int64_t>(drafts.size() - before);
}

}  // namespace kiln
