// Session: one sequence being run through a Program on a Backend.
//
// It owns the backend's per-sequence state (arena, KV cache) and the position bookkeeping.
// Step() runs up to Tmax tokens at consecutive positions starting at the current length (or at 0,
// which starts a new sequence) and returns the logits of the last position, or of every position
// when asked. Prefill() splits a long prompt into chunks of at most `chunk` tokens.
//
//   TRY_ASSIGN(Session session, Session::Create(program, backend, weights, {}));
//   TRY_ASSIGN(auto logits, session.Prefill(prompt_ids, /*all_positions=*/false));
//   logits = session.Step({next_id}).value();
//
// Not thread-safe; one Session per sequence.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "runtime/backend.h"

namespace kiln {

struct SessionOptions {
  int num_threads = 0;
  int64_t vocab_size = 0;  // for validating token ids (0 = read off the logits output)
  bool random_weights = false;  // benchmarks: the backend creates pseudo-random weights
  uint64_t random_seed = 0;
};

class Session {
 public:
  static Result<Session> Create(const Program& program, Backend& backend, std::vector<WeightView> weights,
                                const SessionOptions& options);

  // Runs `tokens` at positions [length(), length() + T). With all_positions the result is
  // T x vocab (row-major), else the last position's vocab logits.
  Result<std::vector<float>> Step(std::span<const int32_t> tokens, bool all_positions = false);
  // Step() into a caller-owned buffer of (all_positions ? T : 1) x vocab floats. Allocates
  // nothing: the decode loop's path.
  Status StepInto(std::span<const int32_t> tokens, bool all_positions, std::span<float> logits);
  // Step() over chunks of at most `chunk` tokens (0 = the Program's Tmax).
  Result<std::vector<float>> Prefill(std::span<const int32_t> tokens, bool all_positions = false,
                                     int64_t chunk = 0);
  // Pipelined decode with sampling on the device, where the backend has it
  // (SupportsDecodeOnDevice): steps feed `first` at length(), then each sampled token, keeping up
  // to `depth` steps in flight (at most Tmax + 1, so that steps run past a stop never overwrite
  // a ring slot the next step reads), so the host never waits between steps. `on_token` sees each
  // sampled token in order and returns false to stop. At most `max_steps` steps run (fewer when
  // the context ends). Steps already in flight past a stop are discarded: afterwards length() has
  // grown by exactly the number of tokens passed to on_token (each step fed one token whose
  // successor was accepted or stopped on); their cache positions count as written for Rewind.
  // Returns that number.
  bool SupportsDecodeOnDevice() const { return backend_session_->SupportsDecodeOnDevice(); }
  Result<int64_t> DecodeOnDevice(int32_t first, const DeviceSampling& sampling, int64_t max_steps, int depth,
                                 const std::function<bool(const SampledToken&)>& on_token);

  // Forgets the sequence (the cache is overwritten from position 0 on).
  void Reset() { length_ = 0; written_end_ = 0; }
  // Truncates the sequence to its first `length` positions, keeping their cache, so the next
  // Step continues at position `length` (prefix reuse: a chat turn prefills only its new suffix).
  // Full-attention caches hold every position, so any length <= length() works. A sliding layer's
  // ring holds only the last window + Tmax - 1 positions ever written: rewinding to L needs
  // positions [max(0, L - window + 1), L) still in the ring, i.e. not overwritten by a later
  // position. Roughly, L >= (furthest position written) - Tmax. Otherwise kOutOfRange and nothing
  // changes: the caller re-prefills from an earlier point (Rewind(0) is Reset() and always works).
  // CanRewind(L) answers without changing anything.
  Status Rewind(int64_t length);
  bool CanRewind(int64_t length) const;

  int64_t length() const { return length_; }
  int64_t vocab_size() const { return vocab_size_; }
  const Program& program() const { return *program_; }
  MemoryReport memory() const { return backend_session_->memory(); }

 private:
  const Program* program_ = nullptr;
  std::unique_ptr<BackendSession> backend_session_;
  int64_t length_ = 0;
  int64_t written_end_ = 0;  // 1 + the furthest position written since Reset (>= length_)
  int64_t vocab_size_ = 0;
  std::vector<int32_t> positions_;  // reused per step; sized at Tmax on creation
  const StepFunction* decode_ = nullptr;   // T = 1, last-position logits
  const StepFunction* prefill_ = nullptr;  // T <= Tmax, last-position logits
  const StepFunction* score_ = nullptr;    // T <= Tmax, logits of every position
};

}  // namespace kiln
