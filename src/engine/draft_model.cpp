#include "engine/draft_model.h"

#include <algorithm>

namespace kiln {

Result<std::unique_ptr<ModelDrafter>> ModelDrafter::Create(std::unique_ptr<LoadedModel> model, int64_t target_vocab_size) {
  TRY_ASSIGN(Session session, model->NewSession());
  if (session.vocab_size() != target_vocab_size) {
    return Error(ErrorCode::kInvalidArgument, "the draft model's vocabulary has " + std::to_string(session.vocab_size()) +
                                                  " tokens, the target's " + std::to_string(target_vocab_size) +
                                                  "; a draft model must share the target's tokenizer");
  }
  return std::unique_ptr<ModelDrafter>(new ModelDrafter(std::move(model), std::move(session)));
}

Result<int64_t> ModelDrafter::Draft(std::span<const int32_t> history, int64_t max, std::vector<int32_t>& drafts) {
  const int64_t context = session_.program().max_context;
  // The draft model needs the whole history in its context, and room for the drafts.
  max = std::min(max, context - static_cast<int64_t>(history.size()));
  if (max <= 0) return int64_t{0};
  GenerateOptions options;
  options.max_new_tokens = max;
  options.ignore_eos = true;  // the target decides where generation ends
  options.decode_depth = 0;   // each draft is needed on the host at once
  TRY_ASSIGN(GenerationResult result, generator_.Generate(history, options));
  drafts.insert(drafts.end(), result.tokens.begin(), result.tokens.end());
  return static_cast<int64_t>(result.tokens.size());
}

}  // namespace kiln
