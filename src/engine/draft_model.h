// A draft model for speculative decoding (speculative.h, SpeculativeType::kDraft): a smaller
// model with the same vocabulary on its own Session, decoding greedily from the target's tokens.
//
//   TRY_ASSIGN(auto draft, LoadedModel::Load("/models/small", options));
//   TRY_ASSIGN(auto drafter, ModelDrafter::Create(std::move(draft), target_vocab));
//   generate_options.speculative.type = SpeculativeType::kDraft;
//   generate_options.speculative.drafter = drafter.get();
//
// Each Draft(history) call is one Generate on the draft session: its cache keeps the longest
// common prefix of what it held and `history` (the rejected drafts of the last round fall away,
// the accepted ones and the target's own token are prefilled in one step), then k greedy steps.
#pragma once

#include <memory>

#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/speculative.h"

namespace kiln {

class ModelDrafter : public Drafter {
 public:
  // Places the draft model for one sequence. kInvalidArgument when its vocabulary size differs
  // from the target's.
  static Result<std::unique_ptr<ModelDrafter>> Create(std::unique_ptr<LoadedModel> model, int64_t target_vocab_size);

  Result<int64_t> Draft(std::span<const int32_t> history, int64_t max, std::vector<int32_t>& drafts) override;

 private:
  ModelDrafter(std::unique_ptr<LoadedModel> model, Session session)
      : model_(std::move(model)), session_(std::move(session)), generator_(session_, nullptr) {}

  std::unique_ptr<LoadedModel> model_;  // the session's program and weights
  Session session_;
  Generator generator_;
};

}  // namespace kiln
