// Sampling the next token on the GPU, so a decode loop (a captured CUDA graph) can feed the
// sampled id to the next step without a round trip through the host.
//
//   void* scratch;  // SampleScratchBytes(vocab) bytes of device memory, owned by the caller
//   uint64_t* counter;  // device word, set once to where the draws of this sequence start
//   DeviceSampling params{.temperature = 0.7f, .top_k = 64, .top_p = 0.95f, .seed = 42};
//   cudaError_t error = LaunchSample(logits, vocab, params, counter, token, logprob, position, scratch, stream);
//
// Semantics: the host Sampler's steps 2-7 (engine/sampler.h), without the repetition penalty:
//   temperature == 0: greedy, the highest logit, the lowest id among ties;
//   otherwise s = logit * (1 / temperature) (f32, as the host), p = softmax(s), then
//   top-k    keep the top_k most likely (0 or >= vocab = off);
//   top-p    keep the smallest most-likely-first set whose mass reaches top_p of what top-k kept
//            (at least one token; 1 = off);
//   min-p    drop tokens whose weight exp(s - max s) is below min_p (relative to the most likely);
//   draw     one token from what is left, in proportion to exp(s - max s).
// Ties at a threshold keep every tied token: when the k-th most likely scaled logit (or the one
// at which top-p's mass is reached) is shared by several ids, all of them stay, where the host
// keeps only the lowest ids. Random logits practically never tie; with top_k = 1 a tie at the
// maximum is drawn from instead of resolved to the lowest id.
// *out_logprob is log-softmax of the RAW logits at the chosen id (kiln::Logprob), for reports.
// Logits must be finite or -inf, with at least one finite.
//
// How (no sort): thresholds are found by radix select over a 32-bit key that orders floats
// (sign-flipped IEEE bits of s), 11, 11 and 10 bits per pass. Each pass is one grid-wide kernel
// that histograms, per block in shared memory, the next digit of the keys that still match the
// chosen prefix; the last block to finish scans the histogram from the top and picks the digit
// where the running count (top-k) or mass (top-p) reaches its target; a pass that lands exactly
// on a bin boundary ends the select early and later passes return at once. Top-k's first pass
// runs inside the first kernel (max, argmax and the raw log-sum-exp); top-p's passes follow
// top-k's, over the keys top-k kept. Top-p masses are summed as 64-bit fixed point
// (weight * 2^40, so weights below 2^-40 of the most likely count as 0) with integer atomics,
// so no result depends on the order blocks finish in. The draw is an inverse CDF in index
// order: each block sums its kept weights (f64), the last block finds the block, then the
// token, where the prefix sum passes u * total.
//
// The random draw: u = (SplitMix64(seed, *counter) >> 11) * 2^-53, in [0, 1), where
//   Mix(z)  = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
//             z ^= z >> 31  (the SplitMix64 finalizer, all arithmetic mod 2^64)
//   SplitMix64(seed, n) = Mix(Mix(seed) + (n + 1) * 0x9E3779B97F4A7C15)
// i.e. output n of a SplitMix64 stream whose state starts at Mix(seed). The draw is a pure
// function of (seed, *counter) and the logits; every call adds 1 to *counter (greedy calls too,
// so a sequence's counter counts its tokens). A captured graph replayed N times therefore draws
// N different numbers, and a seed gives the same tokens on every run and GPU. The numbers differ
// from the host Sampler's Mersenne Twister: the same seed does not give the same tokens there.
//
// Launch: a memset of the scratch's control words, then 1 kernel (greedy) or 2 + 2 (top-k) + 3
// (top-p) kernels, with sizes that depend only on `vocab` and on which filters are on: no host
// sync, no allocation, so the call can be captured in a CUDA graph (params are baked in at
// capture). Calls on one stream serialize on `scratch`; concurrent calls need their own.
// Measured on an H100 at vocab 262144, per call replayed in a graph: greedy 8 us, min-p only
// 14 us, top-k 64: 24 us, top-p 0.95: 35 us, top-k 64 + top-p 0.95: 43 us
// (SamplingKernelTest.PrintsTimeAtGemma4Vocabulary).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kiln::cuda {

struct DeviceSampling {
  float temperature = 0;  // >= 0; 0 = greedy
  int32_t top_k = 0;      // >= 0; 0 = off
  float top_p = 1;        // in (0, 1]; 1 = off
  float min_p = 0;        // in [0, 1); 0 = off
  uint64_t seed = 0;
};

// Bytes of device scratch LaunchSample needs for `vocab` logits (a few tens of KiB; it does not
// grow with the vocabulary).
int64_t SampleScratchBytes(int64_t vocab);

// Samples one token from logits[vocab] (f32, device). Writes the id to *out_token and the raw
// log-softmax at that id to *out_logprob (skipped when null); adds 1 to *counter (may be null only when greedy) and,
// when advance_position is not null, to *advance_position. All pointers are device pointers;
// scratch holds SampleScratchBytes(vocab) bytes, 16-byte aligned. Options are trusted (checked
// by SamplingOptions::Validate on the host). cudaErrorInvalidValue for vocab outside
// [1, 2^31) or a null logits/out_token/scratch; otherwise the launch error, if any.
cudaError_t LaunchSample(const float* logits, int64_t vocab, const DeviceSampling& params, uint64_t* counter,
                         int32_t* out_token, float* out_logprob, int32_t* advance_position, void* scratch,
                         cudaStream_t stream);

// Structured output: sets logits[i] to -inf for every id whose bit is clear in `allowed` (bit i of
// word i / 64; device memory, ceil(vocab / 64) words), so that a LaunchSample after it draws among
// the allowed ids only (its logprob is then relative to them). At least one id in [0, vocab) must
// be allowed. One kernel, no sync: capturable. cudaErrorInvalidValue for vocab outside [1, 2^31)
// or a null pointer.
cudaError_t LaunchMaskLogits(float* logits, int64_t vocab, const uint64_t* allowed, cudaStream_t stream);

}  // namespace kiln::cuda
