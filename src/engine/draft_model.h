// A draft model for speculative decoding (speculative.h, SpeculativeType::kDraft): a smaller
// model with the target's vocabulary, placed once (its own Runner and KV pool), drafting greedily
// for many sequences at once.
//
//   TRY_ASSIGN(auto loaded, LoadedModel::Load("/models/small", options));
//   TRY_ASSIGN(auto draft, DraftModel::Create(std::move(loaded), target_vocab));
//   auto a = draft->NewSequence(), b = draft->NewSequence();    // one per speculating request
//   std::vector<int32_t> drafts_a, drafts_b;
//   DraftModel::Job jobs[] = {{a.get(), history_a, 4, &drafts_a}, {b.get(), history_b, 4, &drafts_b}};
//   TRY(draft->Draft(jobs));
//
// A DraftSequence is one sequence's cache on the draft model: the tokens whose K/V it holds.
// Draft() keeps, for each job, the longest common prefix of those and the job's history (the
// rejected drafts of the last round fall away; the accepted ones and the target's own token are
// fed next), runs the rest of the history, and then decodes greedily: one batched Runner::Run
// over every job per draft position, each row's argmax drawn on the device where the backend
// samples (else taken from the logits on the host). The last draft is
// never fed (the next round feeds what the target kept).
//
// Prompts: a job that says how much of its history is the prompt (Job::prompt_length) shares
// it through the draft model's PrefixCache (prefix_cache.h): a new sequence whose prompt begins
// with a cached prefix takes its blocks instead of running it, and a prompt's prefix is cached
// right after the catch-up step that ran it.
//
// Memory: a job whose next tokens need KV blocks the draft pool cannot give evicts cached
// prefixes first, then stops drafting there (with no drafts, or fewer than asked); its cache
// stays, and a later call continues. Drafting never fails for lack of memory. A DraftSequence
// must not outlive its DraftModel.
//
// ModelDrafter is the single-sequence Drafter over one DraftModel (kiln run, chat).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "engine/model_loader.h"
#include "engine/prefix_cache.h"
#include "engine/speculative.h"
#include "runtime/runner.h"
#include "tokenizer/tokenizer.h"

namespace kiln {

class DraftModel;

class DraftSequence {
 public:
  // Tokens whose K/V the draft model holds for this sequence.
  const std::vector<int32_t>& cached_tokens() const { return tokens_; }
  // Blocks the sequence holds back to the pool; the next Draft feeds the whole history again.
  void Reset();

 private:
  friend class DraftModel;
  explicit DraftSequence(KvBlockPool& pool) : sequence_(pool) {}
  Sequence sequence_;
  std::vector<int32_t> tokens_;  // sequence_.length() of them
  bool prefix_settled_ = false;  // its prompt's prefix is cached (or it took the cached one)
};

class DraftModel {
 public:
  // Places `model` once. kInvalidArgument naming the draft model when its vocabulary size
  // differs from the target's: drafts are token ids of the target's vocabulary.
  static Result<std::unique_ptr<DraftModel>> Create(std::unique_ptr<LoadedModel> model, int64_t target_vocab_size,
                                                    RunnerOptions options = {});

  std::unique_ptr<DraftSequence> NewSequence() { return std::unique_ptr<DraftSequence>(new DraftSequence(runner_->pool())); }

  struct Job {
    DraftSequence* sequence = nullptr;
    std::span<const int32_t> history;   // the prompt and every token so far (the target's pending one last)
    int64_t max = 0;                    // most tokens to draft
    std::vector<int32_t>* drafts = nullptr;  // drafts are appended
    int64_t prompt_length = 0;          // history's first tokens that are the prompt (0: none cached)
  };
  // Drafts for every job (distinct sequences), batched. The unfed history is run first, in at
  // most `catch_up_steps` steps of the draft Program's token bound (a job whose history does not
  // fit in them drafts nothing this time and continues next call), shortest first; then one step
  // per draft position. A job drafts at most as far as the draft model's context allows. A failed
  // step forgets the caches of its sequences and returns its error.
  Status Draft(std::span<const Job> jobs, int64_t catch_up_steps = 1 << 30);

  Runner& runner() { return *runner_; }
  const Program& program() const { return runner_->program(); }
  int64_t vocab_size() const { return runner_->vocab_size(); }
  const LoadedModel& model() const { return *model_; }
  // Prompt tokens taken from the prefix cache instead of run, over every Draft call.
  int64_t cached_tokens() const { return cached_tokens_; }
  const PrefixCache& prefix_cache() const { return *prefixes_; }
  // Gives every cached prefix's blocks back to the pool.
  void ClearPrefixCache() {
    while (prefixes_->EvictOne()) {
    }
  }

 private:
  DraftModel(std::unique_ptr<LoadedModel> model, std::unique_ptr<Runner> runner)
      : model_(std::move(model)), runner_(std::move(runner)), prefixes_(std::make_unique<PrefixCache>(*runner_)) {}

  std::unique_ptr<LoadedModel> model_;  // the runner's program and weights
  std::unique_ptr<Runner> runner_;
  std::unique_ptr<PrefixCache> prefixes_;  // after runner_: gives its blocks back first
  std::vector<float> logits_;
  int64_t cached_tokens_ = 0;
};

// With both tokenizers at hand: kInvalidArgument naming the draft model and the first id whose
// token differs (a draft of the same vocabulary size but another tokenizer would be lossless but
// useless). `draft_name` names the draft model in the message.
Status CheckDraftTokenizer(const tokenizer::Tokenizer& target, const tokenizer::Tokenizer& draft, const std::string& draft_name);

// The Drafter of one sequence (Generator: kiln run, chat) over a DraftModel placed for one
// sequence: its cache follows the conversation from round to round and turn to turn.
class ModelDrafter : public Drafter {
 public:
  // kInvalidArgument when the draft model's vocabulary size differs from the target's.
  static Result<std::unique_ptr<ModelDrafter>> Create(std::unique_ptr<LoadedModel> model, int64_t target_vocab_size);

  Result<int64_t> Draft(std::span<const int32_t> history, int64_t max, std::vector<int32_t>& drafts) override;

 private:
  explicit ModelDrafter(std::unique_ptr<DraftModel> model) : model_(std::move(model)), sequence_(model_->NewSequence()) {}

  std::unique_ptr<DraftModel> model_;
  std::unique_ptr<DraftSequence> sequence_;
};

}  // namespace kiln
