#include "runtime/session.h"

#include <algorithm>

namespace kiln {

Result<Session> Session::Create(const Program& program, Backend& backend, std::vector<WeightView> weights,
                                const SessionOptions& options) {
  RunnerOptions runner_options;
  runner_options.num_threads = options.num_threads;
  runner_options.random_weights = options.random_weights;
  runner_options.random_seed = options.random_seed;
  // One sequence: the pool holds exactly what it can use.
  runner_options.kv_pool = KvPoolSize::ForSequences(program, 1);
  Session session;
  TRY_ASSIGN(session.owned_runner_, Runner::Create(program, backend, std::move(weights), runner_options));
  session.runner_ = session.owned_runner_.get();
  session.sequence_ = std::make_unique<Sequence>(session.runner_->pool());
  return session;
}

Session Session::Attach(Runner& runner) {
  Session session;
  session.runner_ = &runner;
  session.sequence_ = std::make_unique<Sequence>(runner.pool());
  return session;
}

Status Session::StepInto(std::span<const int32_t> tokens, bool all_positions, std::span<float> logits) {
  const BatchEntry entry{sequence_.get(), tokens, all_positions};
  return runner_->Run(std::span<const BatchEntry>(&entry, 1), logits);
}

Status Session::StepInto(std::span<const int32_t> tokens, bool all_positions, std::span<float> logits, std::span<float> hidden) {
  if (hidden.empty()) return StepInto(tokens, all_positions, logits);
  const BatchEntry entry{sequence_.get(), tokens, all_positions};
  return runner_->Run(std::span<const BatchEntry>(&entry, 1), logits, hidden);
}

Result<std::vector<float>> Session::Step(std::span<const int32_t> tokens, bool all_positions) {
  std::vector<float> logits(static_cast<size_t>((all_positions ? tokens.size() : 1) * static_cast<size_t>(vocab_size())));
  TRY(StepInto(tokens, all_positions, logits));
  return logits;
}

Result<std::vector<float>> Session::Prefill(std::span<const int32_t> tokens, bool all_positions, int64_t chunk) {
  const Program& program = runner_->program();
  if (chunk <= 0 || chunk > program.max_tokens) chunk = program.max_tokens;
  if (tokens.empty()) return Error(ErrorCode::kInvalidArgument, "empty prompt");
  if (length() + static_cast<int64_t>(tokens.size()) > program.max_context) {
    return Error(ErrorCode::kOutOfRange, "prompt of " + std::to_string(tokens.size()) + " tokens (after " +
                                             std::to_string(length()) + " cached) exceeds the context of " +
                                             std::to_string(program.max_context) + " tokens; raise --ctx or shorten the prompt");
  }
  std::vector<float> result;
  for (size_t begin = 0; begin < tokens.size(); begin += static_cast<size_t>(chunk)) {
    const size_t end = std::min(tokens.size(), begin + static_cast<size_t>(chunk));
    TRY_ASSIGN(std::vector<float> logits, Step(tokens.subspan(begin, end - begin), all_positions));
    if (all_positions) {
      result.insert(result.end(), logits.begin(), logits.end());
    } else {
      result = std::move(logits);
    }
  }
  return result;
}

}  // namespace kiln
