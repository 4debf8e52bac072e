// Session: one sequence on a Runner, the single-sequence case of the batched path.
//
// Step() runs up to Tmax tokens at consecutive positions starting at the current length (or at 0,
// which starts a new sequence) and returns the logits of the last position, or of every position
// when asked. Prefill() splits a long prompt into chunks of at most `chunk` tokens. A Session
// either places its own Runner (Create) or shares one with other sequences (Attach).
//
//   TRY_ASSIGN(Session session, Session::Create(program, backend, weights, {}));
//   TRY_ASSIGN(auto logits, session.Prefill(prompt_ids, /*all_positions=*/false));
//   logits = session.Step({next_id}).value();
//
// Not thread-safe; one thread drives a Session (and the Runner it shares).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "runtime/runner.h"

namespace kiln {

struct SessionOptions {
  int num_threads = 0;
  bool random_weights = false;  // benchmarks: the backend creates pseudo-random weights
  uint64_t random_seed = 0;
};

class Session {
 public:
  static Result<Session> Create(const Program& program, Backend& backend, std::vector<WeightView> weights,
                                const SessionOptions& options);
  // A new sequence on a shared Runner, which must outlive the Session.
  static Session Attach(Runner& runner);

  // Runs `tokens` at positions [length(), length() + T). With all_positions the result is
  // T x vocab (row-major), else the last position's vocab logits.
  Result<std::vector<float>> Step(std::span<const int32_t> tokens, bool all_positions = false);
  // Step() into a caller-owned buffer of (all_positions ? T : 1) x vocab floats. Allocates
  // nothing: the decode loop's path.
  Status StepInto(std::span<const int32_t> tokens, bool all_positions, std::span<float> logits);
  // With the final-normed hidden state of every logit row into `hidden` (a program with an MTP
  // drafter; Runner::Run); empty `hidden`: as above.
  Status StepInto(std::span<const int32_t> tokens, bool all_positions, std::span<float> logits, std::span<float> hidden);
  // Step() over chunks of at most `chunk` tokens (0 = the Program's Tmax).
  Result<std::vector<float>> Prefill(std::span<const int32_t> tokens, bool all_positions = false,
                                     int64_t chunk = 0);
  // Pipelined decode with sampling on the device (Runner::DecodeOnDevice).
  bool SupportsDecodeOnDevice() const { return runner_->SupportsDecodeOnDevice(); }
  Result<int64_t> DecodeOnDevice(int32_t first, const DeviceSampling& sampling, int64_t max_steps, int depth,
                                 const std::function<bool(const SampledToken&)>& on_token,
                                 const Runner::AllowedTokensFn& allowed = {}) {
    return runner_->DecodeOnDevice(*sequence_, first, sampling, max_steps, depth, on_token, allowed);
  }

  // Forgets the sequence and returns its KV blocks (the cache is written from position 0 on).
  void Reset() { sequence_->Release(); }
  // Truncates the sequence to its first `length` positions, keeping their cache, so the next
  // Step continues at position `length` (prefix reuse: a chat turn prefills only its new suffix).
  // See Sequence::CanRewind; otherwise kOutOfRange and nothing changes: the caller re-prefills
  // from an earlier point (Rewind(0) is Reset() and always works).
  Status Rewind(int64_t length) { return sequence_->Rewind(length); }
  bool CanRewind(int64_t length) const { return sequence_->CanRewind(length); }

  int64_t length() const { return sequence_->length(); }
  int64_t vocab_size() const { return runner_->vocab_size(); }
  const Program& program() const { return runner_->program(); }
  MemoryReport memory() const { return runner_->memory(); }
  Runner& runner() { return *runner_; }
  Sequence& sequence() { return *sequence_; }

 private:
  std::unique_ptr<Runner> owned_runner_;  // declared first: the sequence returns its blocks before
  Runner* runner_ = nullptr;
  std::unique_ptr<Sequence> sequence_;
};

}  // namespace kiln
