#include "runtime/session.h"

#include <algorithm>
#include <numeric>

namespace kiln {

Result<Session> Session::Create(const Program& program, Backend& backend, std::vector<WeightView> weights,
                                const SessionOptions& options) {
  if (weights.size() != program.weights.size()) {
    return Error(ErrorCode::kInvalidArgument, "program reads " + std::to_string(program.weights.size()) +
                                                  " weights, " + std::to_string(weights.size()) + " given");
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    const WeightBinding& binding = program.weights[i];
    if (weights[i].dtype != binding.dtype || weights[i].size_bytes != binding.size_bytes() ||
        (!weights[i].data && !options.random_weights)) {
      return Error(ErrorCode::kInvalidArgument, "weight '" + binding.tensor_name + "' differs from the program's");
    }
  }
  if (options.random_weights && !backend.SupportsRandomWeights()) {
    return Error(ErrorCode::kUnsupported, "the " + backend.target_name() + " backend cannot create random weights");
  }
  const StepFunction* decode = program.FindStep("decode");
  if (!decode) return Error(ErrorCode::kPlanInvalid, "program has no decode step");
  // The logits output's columns are the vocabulary.
  int64_t vocab = options.vocab_size;
  for (int32_t id : decode->graph.OutputIds()) vocab = decode->graph.value(id).shape.dims.back().value;
  Session session;
  session.program_ = &program;
  session.vocab_size_ = vocab;
  session.positions_.resize(static_cast<size_t>(program.max_tokens));
  session.decode_ = decode;
  session.prefill_ = program.FindStep("prefill");
  session.score_ = program.FindStep("score");
  BackendSessionOptions backend_options;
  backend_options.num_threads = options.num_threads;
  backend_options.random_weights = options.random_weights;
  backend_options.random_seed = options.random_seed;
  TRY_ASSIGN(session.backend_session_, backend.CreateSession(program, std::move(weights), backend_options));
  return session;
}

Status Session::StepInto(std::span<const int32_t> tokens, bool all_positions, std::span<float> logits) {
  const int64_t count = static_cast<int64_t>(tokens.size());
  if (count == 0) return Error(ErrorCode::kInvalidArgument, "a step needs at least one token");
  if (count > program_->max_tokens) {
    return Error(ErrorCode::kInvalidArgument, "step of " + std::to_string(count) + " tokens exceeds the chunk bound " +
                                                  std::to_string(program_->max_tokens) + "; use Prefill to split it");
  }
  if (length_ + count > program_->max_context) {
    return Error(ErrorCode::kOutOfRange, "sequence of " + std::to_string(length_ + count) +
                                             " tokens exceeds the context of " + std::to_string(program_->max_context) +
                                             " tokens; raise --ctx or shorten the prompt");
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= vocab_size_) {
      return Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                    std::to_string(vocab_size_) + ")");
    }
  }
  const int64_t rows = all_positions ? count : 1;
  if (static_cast<int64_t>(logits.size()) != rows * vocab_size_) {
    return Error(ErrorCode::kInvalidArgument, "logits buffer holds " + std::to_string(logits.size()) +
                                                  " floats, the step writes " + std::to_string(rows * vocab_size_));
  }
  // Steps are looked up in Create's order: decode, prefill, score.
  const StepFunction* step = all_positions ? score_ : (count == 1 ? decode_ : prefill_);
  if (!step || step->max_tokens < count) {
    return Error(ErrorCode::kUnsupported, "program has no step for " + std::to_string(count) + " tokens" +
                                              (all_positions ? " with all-position logits" : ""));
  }
  std::iota(positions_.begin(), positions_.begin() + count, static_cast<int32_t>(length_));
  StepIo io{tokens, std::span<const int32_t>(positions_.data(), static_cast<size_t>(count)), logits.data()};
  TRY(backend_session_->RunStep(*step, io));
  length_ += count;
  written_end_ = std::max(written_end_, length_);
  return Status::Ok();
}

Result<int64_t> Session::DecodeOnDevice(int32_t first, const DeviceSampling& sampling, int64_t max_steps, int depth,
                                        const std::function<bool(const SampledToken&)>& on_token) {
  if (first < 0 || first >= vocab_size_) {
    return Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(first) + " is outside the vocabulary [0, " +
                                                  std::to_string(vocab_size_) + ")");
  }
  if (depth < 1 || depth > BackendSession::kMaxDecodeInFlight) {
    return Error(ErrorCode::kInvalidArgument, "decode depth must be in [1, " + std::to_string(BackendSession::kMaxDecodeInFlight) +
                                                  "], got " + std::to_string(depth));
  }
  // Steps run past a stop overwrite ring slots; the next step must still find its window there.
  // A ring holds window + Tmax - 1 positions, so at most Tmax steps may run past the last
  // accepted one: depth - 1 <= Tmax.
  depth = static_cast<int>(std::min<int64_t>(depth, program_->max_tokens + 1));
  max_steps = std::min(max_steps, program_->max_context - length_);
  if (max_steps <= 0) return int64_t{0};
  TRY(backend_session_->BeginDecode(*decode_, first, length_, sampling));
  int64_t enqueued = 0, received = 0;
  Status status = Status::Ok();
  auto enqueue = [&]() {
    status = backend_session_->EnqueueDecode();
    if (status.ok()) ++enqueued;
    return status.ok();
  };
  while (enqueued < std::min<int64_t>(depth, max_steps) && enqueue()) {
  }
  while (status.ok() && received < enqueued) {
    Result<SampledToken> token = backend_session_->NextDecoded();
    if (!token) {
      status = token.error();
      break;
    }
    ++received;
    if (!on_token(*token)) break;
    if (enqueued < max_steps) enqueue();
  }
  backend_session_->EndDecode();
  // Steps past the last accepted token ran too: their positions were written.
  written_end_ = std::max(written_end_, length_ + enqueued);
  length_ += received;
  if (!status.ok()) return status.error();
  return received;
}

bool Session::CanRewind(int64_t length) const {
  if (length < 0 || length > length_) return false;
  if (length == 0) return true;
  for (const CacheLayout& cache : program_->caches) {
    if (cache.window <= 0) continue;
    // Slot p % capacity still holds position p iff no position p + capacity was written.
    const int64_t first_needed = std::max<int64_t>(0, length - cache.window + 1);
    if (first_needed < written_end_ - cache.capacity_positions) return false;
  }
  return true;
}

Status Session::Rewind(int64_t length) {
  if (length < 0 || length > length_) {
    return Error(ErrorCode::kOutOfRange, "cannot rewind to " + std::to_string(length) + " positions: the sequence holds " +
                                             std::to_string(length_));
  }
  if (!CanRewind(length)) {
    return Error(ErrorCode::kOutOfRange, "cannot rewind to " + std::to_string(length) +
                                             " positions: the sliding-window cache no longer holds the window before it "
                                             "(positions up to " + std::to_string(written_end_) +
                                             " were written); prefill again from an earlier point");
  }
  length_ = length;
  if (length == 0) written_end_ = 0;  // nothing kept: the ring starts over, as after Reset()
  return Status::Ok();
}

Result<std::vector<float>> Session::Step(std::span<const int32_t> tokens, bool all_positions) {
  std::vector<float> logits(static_cast<size_t>((all_positions ? tokens.size() : 1) * static_cast<size_t>(vocab_size_)));
  TRY(StepInto(tokens, all_positions, logits));
  return logits;
}

Result<std::vector<float>> Session::Prefill(std::span<const int32_t> tokens, bool all_positions, int64_t chunk) {
  if (chunk <= 0 || chunk > program_->max_tokens) chunk = program_->max_tokens;
  if (tokens.empty()) return Error(ErrorCode::kInvalidArgument, "empty prompt");
  if (length_ + static_cast<int64_t>(tokens.size()) > program_->max_context) {
    return Error(ErrorCode::kOutOfRange, "prompt of " + std::to_string(tokens.size()) + " tokens (after " +
                                             std::to_string(length_) + " cached) exceeds the context of " +
                                             std::to_string(program_->max_context) + " tokens; raise --ctx or shorten the prompt");
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
