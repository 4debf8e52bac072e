#include "backends/cuda/kernels/sampling.cuh"

#include <climits>
#include <cmath>
#include <type_traits>

namespace kiln::cuda {

namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / kWarp;
// 128 blocks of 512 threads cover Gemma 4's 262144 logits at 4 per thread in one wave on an
// H100; smaller vocabularies get fewer blocks, larger ones longer chunks.
constexpr int kMaxBlocks = 128;
constexpr int64_t kValuesPerThread = 4;
constexpr int kBins = 2048;  // 11-bit digits: passes of 11, 11 and 10 bits cover a 32-bit key
constexpr int kBinsPerThread = kBins / kThreads;
constexpr int kPasses = 3;
constexpr int kFirstShift = 21, kFirstBits = 11;  // StatsKernel runs top-k's first pass
constexpr int kShift[kPasses] = {kFirstShift, 10, 0};
constexpr int kBits[kPasses] = {kFirstBits, 11, 10};
constexpr double kMassScale = 1099511627776.0;  // 2^40: 262144 weights <= 1 sum below 2^58
// Done counters: stats, top-k passes, top-p passes, draw.
constexpr int kStatsDone = 0, kTopKDone = 1, kTopPDone = kTopKDone + kPasses, kDrawDone = kTopPDone + kPasses;
constexpr int kNumDone = kDrawDone + 1;

// Zeroed by a memset at the start of every call (the histogram only before a sampled call; each
// select pass's last block leaves it zeroed again).
struct Control {
  unsigned int done[kNumDone];
  unsigned long long histogram[kBins];
};

// One radix select in progress: the digits chosen so far, the count/mass of keys above them.
struct Select {
  uint32_t prefix;
  int32_t resolved;
  unsigned long long above;
  unsigned long long target;
};

struct State {
  float raw_max;
  float raw_log_sum;  // log sum exp(logit - raw_max)
  float scaled_max;
  uint32_t topk_threshold;  // lowest key top-k keeps (0 = all)
  uint32_t threshold;       // lowest key the draw considers: max of top-k's and top-p's
  Select select[2];         // top-k, top-p
};

struct BlockStats {
  float max;
  int32_t argmax;
  double sum;  // sum exp(logit - max) over the block's chunk
};

struct Scratch {
  Control* control;
  State* state;
  BlockStats* block_stats;  // [kMaxBlocks]
  double* block_mass;       // [kMaxBlocks]
};

constexpr int64_t AlignUp(int64_t bytes) { return (bytes + 255) / 256 * 256; }
constexpr int64_t kStateOffset = AlignUp(sizeof(Control));
constexpr int64_t kBlockStatsOffset = kStateOffset + AlignUp(sizeof(State));
constexpr int64_t kBlockMassOffset = kBlockStatsOffset + AlignUp(sizeof(BlockStats) * kMaxBlocks);
constexpr int64_t kScratchBytes = kBlockMassOffset + AlignUp(sizeof(double) * kMaxBlocks);

Scratch Carve(void* scratch) {
  char* base = static_cast<char*>(scratch);
  return {reinterpret_cast<Control*>(base), reinterpret_cast<State*>(base + kStateOffset),
          reinterpret_cast<BlockStats*>(base + kBlockStatsOffset), reinterpret_cast<double*>(base + kBlockMassOffset)};
}

int Blocks(int64_t vocab) {
  const int64_t wanted = (vocab + kThreads * kValuesPerThread - 1) / (kThreads * kValuesPerThread);
  return static_cast<int>(wanted < 1 ? 1 : (wanted > kMaxBlocks ? kMaxBlocks : wanted));
}

// Orders floats as unsigned ints: larger float, larger key. -0 and +0 are one value.
__device__ __forceinline__ uint32_t OrderedKey(float value) {
  const uint32_t bits = __float_as_uint(value == 0.0f ? 0.0f : value);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ uint64_t Mix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__device__ __forceinline__ double Uniform(uint64_t seed, uint64_t n) {
  const uint64_t bits = Mix(Mix(seed) + (n + 1) * 0x9E3779B97F4A7C15ull);
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

struct ArgMaxPair {
  float value;
  int32_t index;
};

// Larger value wins; among equal values the lower index (kiln::ArgMax).
__device__ __forceinline__ bool Better(ArgMaxPair a, ArgMaxPair b) {
  return a.value > b.value || (a.value == b.value && a.index < b.index);
}

__device__ __forceinline__ ArgMaxPair WarpArgMax(ArgMaxPair p) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const ArgMaxPair other{__shfl_xor_sync(kFullMask, p.value, offset), __shfl_xor_sync(kFullMask, p.index, offset)};
    if (Better(other, p)) p = other;
  }
  return p;
}

// Block-wide reductions and scans; every thread of the block must call them.
__device__ ArgMaxPair BlockArgMax(ArgMaxPair p) {
  __shared__ ArgMaxPair warp_best[kWarps];
  __shared__ ArgMaxPair result;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  p = WarpArgMax(p);
  if (lane == 0) warp_best[warp] = p;
  __syncthreads();
  if (warp == 0) {
    p = lane < kWarps ? warp_best[lane] : ArgMaxPair{-INFINITY, INT_MAX};
    p = WarpArgMax(p);
    if (lane == 0) result = p;
  }
  __syncthreads();
  return result;
}

template <typename T>
__device__ T BlockSum(T value) {
  __shared__ T warp_sums[kWarps];
  __shared__ T result;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  for (int offset = kWarp / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullMask, value, offset);
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < kWarps ? warp_sums[lane] : T(0);
    for (int offset = kWarp / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullMask, value, offset);
    if (lane == 0) result = value;
  }
  __syncthreads();
  return result;
}

template <typename T>
__device__ T WarpInclusiveScan(T value) {
  const int lane = threadIdx.x % kWarp;
  for (int offset = 1; offset < kWarp; offset *= 2) {
    const T other = __shfl_up_sync(kFullMask, value, offset);
    if (lane >= offset) value += other;
  }
  return value;
}

// Sum of `value` over the threads before this one (in threadIdx order); *total = over all.
template <typename T>
__device__ T BlockExclusiveScan(T value, T* total) {
  __shared__ T warp_offsets[kWarps];
  __shared__ T block_total;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const T inclusive = WarpInclusiveScan(value);
  T exclusive = __shfl_up_sync(kFullMask, inclusive, 1);
  if (lane == 0) exclusive = T(0);
  if (lane == kWarp - 1) warp_offsets[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const T warp_total = lane < kWarps ? warp_offsets[lane] : T(0);
    const T warp_inclusive = WarpInclusiveScan(warp_total);
    T warp_exclusive = __shfl_up_sync(kFullMask, warp_inclusive, 1);
    if (lane == 0) warp_exclusive = T(0);
    if (lane < kWarps) warp_offsets[lane] = warp_exclusive;
    if (lane == kWarp - 1) block_total = warp_inclusive;
  }
  __syncthreads();
  const T result = warp_offsets[warp] + exclusive;
  *total = block_total;
  __syncthreads();  // the next call rewrites warp_offsets
  return result;
}

// True in the block that finishes last; it then sees every other block's writes and atomics
// (read them with __ldcg: L1 is not coherent across blocks).
__device__ bool LastBlockDone(unsigned int* done) {
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(done, 1u) == gridDim.x - 1;
  __syncthreads();
  if (last) __threadfence();
  return last;
}

__device__ __forceinline__ void Finish(int32_t token, float logit, const State& stats, uint64_t* counter,
                                       int32_t* out_token, float* out_logprob, int32_t* advance_position) {
  *out_token = token;
  // The same f32 expression as kiln::Logprob.
  if (out_logprob != nullptr) *out_logprob = logit - stats.raw_max - stats.raw_log_sum;
  if (counter != nullptr) *counter += 1;
  if (advance_position != nullptr) *advance_position += 1;
}

// Calls f(index, logit) for this thread's logits of [begin, end), in increasing index; the loads
// of kValuesPerThread logits are issued together before any is used.
template <typename F>
__device__ __forceinline__ void ForEachLogit(const float* logits, int64_t begin, int64_t end, F f) {
  for (int64_t base = begin + threadIdx.x; base < end; base += kThreads * kValuesPerThread) {
    float values[kValuesPerThread];
#pragma unroll
    for (int j = 0; j < kValuesPerThread; ++j) {
      const int64_t i = base + j * kThreads;
      values[j] = i < end ? logits[i] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kValuesPerThread; ++j) {
      const int64_t i = base + j * kThreads;
      if (i < end) f(i, values[j]);
    }
  }
}

// A block's digit histogram: counts in `low`, or 64-bit fixed-point masses as low and high
// words, so every shared atomic is a native 32-bit add (64-bit shared adds are compare-and-swap
// loops, slow when most keys fall in a few bins, as logits do).
struct SharedHistogram {
  unsigned int low[kBins];
  unsigned int high[kBins];
};

__device__ void ClearHistogram(SharedHistogram& histogram) {
  for (int b = threadIdx.x; b < kBins; b += kThreads) histogram.low[b] = histogram.high[b] = 0;
  __syncthreads();
}

__device__ __forceinline__ void AddMass(SharedHistogram& histogram, uint32_t digit, unsigned long long mass) {
  const unsigned int low = static_cast<unsigned int>(mass), high = static_cast<unsigned int>(mass >> 32);
  const unsigned int old = atomicAdd(&histogram.low[digit], low);
  const unsigned int carry = old > 0xffffffffu - low ? 1u : 0u;
  if (high + carry != 0) atomicAdd(&histogram.high[digit], high + carry);
}

__device__ void FlushHistogram(const SharedHistogram& histogram, unsigned long long* global) {
  __syncthreads();
  for (int b = threadIdx.x; b < kBins; b += kThreads) {
    const unsigned long long value = (static_cast<unsigned long long>(histogram.high[b]) << 32) + histogram.low[b];
    if (value != 0) atomicAdd(&global[b], value);
  }
}

// The last block of a select pass: picks the digit at which the running count/mass (from the
// highest digit down, starting at `above`) reaches `target`, records it in `select`, and clears
// the global histogram for the next pass. The first top-p pass (target_from_total) sees the
// whole top-k set, so its target is top_p x the histogram's total.
__device__ void ChooseDigit(unsigned long long* global, uint32_t prefix, unsigned long long above,
                            unsigned long long target, bool target_from_total, float top_p, int shift, int bits,
                            bool top_k, Select& select, State& state) {
  // Thread t owns bins kBins-1-4t ... kBins-4-4t, so thread order is descending digit order.
  unsigned long long mine[kBinsPerThread];
  unsigned long long local = 0;
  for (int j = 0; j < kBinsPerThread; ++j) {
    const int bin = kBins - 1 - (threadIdx.x * kBinsPerThread + j);
    mine[j] = __ldcg(&global[bin]);
    local += mine[j];
    global[bin] = 0;
  }
  unsigned long long total = 0;
  const unsigned long long before = BlockExclusiveScan(local, &total);
  if (target_from_total) {
    const double wanted = ceil(static_cast<double>(top_p) * static_cast<double>(total));
    target = wanted < 1.0 ? 1 : (wanted > static_cast<double>(total) ? total : static_cast<unsigned long long>(wanted));
  }
  // Exactly one bin takes the running value from below the target (above < target holds) to at
  // least it.
  unsigned long long running = above + before;
  for (int j = 0; j < kBinsPerThread; ++j) {
    const unsigned long long next = running + mine[j];
    if (running < target && next >= target) {
      const uint32_t chosen = (prefix << bits) | static_cast<uint32_t>(kBins - 1 - (threadIdx.x * kBinsPerThread + j));
      select.prefix = chosen;
      select.above = running;
      select.target = target;
      // Reaching the target exactly at the bin's end keeps the whole bin: its lowest possible
      // key is the threshold, and the remaining passes are unnecessary.
      if (shift == 0 || next == target) {
        const uint32_t threshold = chosen << shift;
        select.resolved = 1;
        if (top_k) state.topk_threshold = threshold;
        state.threshold = max(state.threshold, threshold);
      }
    }
    running = next;
  }
}

// Max, argmax and sum exp(logit - max) of the raw logits. Greedy ends here. Otherwise the last
// block sets up the selects, and with top-k on this kernel is also top-k's first pass (its
// digits need no max).
__global__ void __launch_bounds__(kThreads) StatsKernel(const float* logits, int64_t vocab, int64_t chunk,
                                                        bool greedy, float inverse_temperature, int32_t top_k,
                                                        bool top_k_on, Scratch scratch, uint64_t* counter,
                                                        int32_t* out_token, float* out_logprob,
                                                        int32_t* advance_position) {
  __shared__ SharedHistogram histogram;
  const int64_t begin = blockIdx.x * chunk, end = min(vocab, begin + chunk);
  if (top_k_on) ClearHistogram(histogram);
  ArgMaxPair best{-INFINITY, INT_MAX};
  ForEachLogit(logits, begin, end, [&](int64_t i, float logit) {
    const ArgMaxPair candidate{logit, static_cast<int32_t>(i)};
    if (Better(candidate, best)) best = candidate;
    if (top_k_on) atomicAdd(&histogram.low[OrderedKey(logit * inverse_temperature) >> kFirstShift], 1u);
  });
  const ArgMaxPair block_best = BlockArgMax(best);
  double sum = 0.0;
  if (block_best.value != -INFINITY) {
    ForEachLogit(logits, begin, end, [&](int64_t, float logit) { sum += expf(logit - block_best.value); });
  }
  sum = BlockSum(sum);
  if (threadIdx.x == 0) scratch.block_stats[blockIdx.x] = {block_best.value, block_best.index, sum};
  if (top_k_on) FlushHistogram(histogram, scratch.control->histogram);
  if (!LastBlockDone(&scratch.control->done[kStatsDone])) return;

  // Merged in block order, so the result does not depend on which block finished when.
  ArgMaxPair merged{-INFINITY, INT_MAX};
  for (int b = threadIdx.x; b < static_cast<int>(gridDim.x); b += kThreads) {
    const ArgMaxPair candidate{__ldcg(&scratch.block_stats[b].max), __ldcg(&scratch.block_stats[b].argmax)};
    if (Better(candidate, merged)) merged = candidate;
  }
  merged = BlockArgMax(merged);
  double total = 0.0;
  for (int b = threadIdx.x; b < static_cast<int>(gridDim.x); b += kThreads) {
    const double block_sum = __ldcg(&scratch.block_stats[b].sum);
    const float block_max = __ldcg(&scratch.block_stats[b].max);
    if (block_sum > 0.0) total += block_sum * exp(static_cast<double>(block_max) - static_cast<double>(merged.value));
  }
  total = BlockSum(total);
  State& state = *scratch.state;
  if (threadIdx.x == 0) {
    state.raw_max = merged.value;
    state.raw_log_sum = static_cast<float>(log(total));
    if (greedy) {
      Finish(merged.index, merged.value, state, counter, out_token, out_logprob, advance_position);
    } else {
      // x * (1/T) is monotone in x, so the largest scaled logit is the largest logit, scaled.
      state.scaled_max = merged.value * inverse_temperature;
      state.topk_threshold = 0;
      state.threshold = 0;
      state.select[0] = {0, 0, 0, static_cast<unsigned long long>(top_k)};
      state.select[1] = {0, 0, 0, 0};
    }
  }
  if (!top_k_on) return;
  __syncthreads();  // the setup above before ChooseDigit updates it
  ChooseDigit(scratch.control->histogram, /*prefix=*/0, /*above=*/0, static_cast<unsigned long long>(top_k),
              /*target_from_total=*/false, /*top_p=*/1.0f, kFirstShift, kFirstBits, /*top_k=*/true, state.select[0], state);
}

__device__ __forceinline__ unsigned long long FixedMass(float scaled, float scaled_max) {
  return static_cast<unsigned long long>(exp(static_cast<double>(scaled - scaled_max)) * kMassScale);
}

// One radix-select pass (see the header). kMass: top-p (masses, over the keys top-k kept);
// otherwise top-k (counts, over all keys; its first pass ran in StatsKernel).
template <bool kMass>
__global__ void __launch_bounds__(kThreads) SelectKernel(const float* logits, int64_t vocab, int64_t chunk,
                                                         float inverse_temperature, float top_p, int pass,
                                                         int shift, int bits, Scratch scratch) {
  __shared__ SharedHistogram histogram;
  State& state = *scratch.state;
  Select& select = state.select[kMass ? 1 : 0];
  if (select.resolved) return;  // written by an earlier kernel: the same in every block
  // Read before the last block's ChooseDigit rewrites them.
  const uint32_t prefix = select.prefix;
  const unsigned long long above = select.above, target = select.target;
  const int prefix_shift = shift + bits;  // 32 on a first pass: every key matches prefix 0
  const uint32_t digit_mask = (1u << bits) - 1;
  const uint32_t domain = kMass ? state.topk_threshold : 0;
  const float scaled_max = state.scaled_max;
  ClearHistogram(histogram);
  const int64_t begin = blockIdx.x * chunk, end = min(vocab, begin + chunk);
  ForEachLogit(logits, begin, end, [&](int64_t, float logit) {
    const float scaled = logit * inverse_temperature;
    const uint32_t key = OrderedKey(scaled);
    if ((static_cast<uint64_t>(key) >> prefix_shift) != prefix || (kMass && key < domain)) return;
    const uint32_t digit = (key >> shift) & digit_mask;
    if constexpr (kMass) {
      AddMass(histogram, digit, FixedMass(scaled, scaled_max));
    } else {
      atomicAdd(&histogram.low[digit], 1u);
    }
  });
  FlushHistogram(histogram, scratch.control->histogram);
  const int done = (kMass ? kTopPDone : kTopKDone) + pass;
  if (!LastBlockDone(&scratch.control->done[done])) return;
  ChooseDigit(scratch.control->histogram, prefix, above, target, /*target_from_total=*/kMass && pass == 0, top_p,
              shift, bits, /*top_k=*/!kMass, select, state);
}

__device__ __forceinline__ double KeptWeight(float logit, float inverse_temperature, float scaled_max,
                                             uint32_t threshold, double min_p) {
  const float scaled = logit * inverse_temperature;
  if (OrderedKey(scaled) < threshold) return 0.0;
  const double weight = exp(static_cast<double>(scaled - scaled_max));
  return weight < min_p ? 0.0 : weight;  // min-p, as the host compares
}

// The draw: per-block kept mass, then the last block finds the block, and in it the token, where
// the prefix sum in index order passes u * total.
__global__ void __launch_bounds__(kThreads) DrawKernel(const float* logits, int64_t vocab, int64_t chunk,
                                                       float inverse_temperature, double min_p, uint64_t seed,
                                                       Scratch scratch, uint64_t* counter, int32_t* out_token,
                                                       float* out_logprob, int32_t* advance_position) {
  const State& state = *scratch.state;
  const uint32_t threshold = state.threshold;
  const float scaled_max = state.scaled_max;
  int64_t begin = blockIdx.x * chunk, end = min(vocab, begin + chunk);
  double mass = 0.0;
  ForEachLogit(logits, begin, end, [&](int64_t, float logit) {
    mass += KeptWeight(logit, inverse_temperature, scaled_max, threshold, min_p);
  });
  mass = BlockSum(mass);
  if (threadIdx.x == 0) scratch.block_mass[blockIdx.x] = mass;
  if (!LastBlockDone(&scratch.control->done[kDrawDone])) return;

  // Block b owns [start_b, start_b+1) of [0, total) (gridDim.x <= kThreads: one block a thread).
  __shared__ double starts[kMaxBlocks + 1];
  __shared__ int chosen_block, last_with_mass;
  __shared__ double block_target;
  __shared__ int32_t found, last_kept;
  const int blocks = static_cast<int>(gridDim.x);
  const double block = threadIdx.x < blocks ? __ldcg(&scratch.block_mass[threadIdx.x]) : 0.0;
  double total = 0.0;
  const double start = BlockExclusiveScan(block, &total);
  if (threadIdx.x == 0) {
    chosen_block = INT_MAX;
    last_with_mass = -1;
    found = INT_MAX;
    last_kept = -1;
  }
  if (threadIdx.x < blocks) starts[threadIdx.x] = start;
  if (threadIdx.x == 0) starts[blocks] = total;
  __syncthreads();
  const double target = Uniform(seed, *counter) * total;
  if (threadIdx.x < blocks && block > 0.0) {
    atomicMax(&last_with_mass, static_cast<int>(threadIdx.x));
    if (start <= target && target < starts[threadIdx.x + 1]) atomicMin(&chosen_block, static_cast<int>(threadIdx.x));
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    if (chosen_block != INT_MAX) {
      block_target = target - starts[chosen_block];
    } else {  // only rounding (u * total rounded up to total): the last kept token
      chosen_block = last_with_mass;
      block_target = INFINITY;
    }
  }
  __syncthreads();
  begin = chosen_block * chunk;
  end = min(vocab, begin + chunk);
  double running = 0.0;
  for (int64_t tile = begin; tile < end; tile += kThreads) {
    const int64_t i = tile + threadIdx.x;
    const double weight = i < end ? KeptWeight(logits[i], inverse_temperature, scaled_max, threshold, min_p) : 0.0;
    double tile_mass = 0.0;
    const double before = running + BlockExclusiveScan(weight, &tile_mass);
    if (weight > 0.0) {
      atomicMax(&last_kept, static_cast<int32_t>(i));
      // This scan rounds differently from the per-block sums, so two neighbours may both claim
      // the target (the lower wins) or none (the block's last kept token stands in).
      if (before <= block_target && block_target < before + weight) atomicMin(&found, static_cast<int32_t>(i));
    }
    running += tile_mass;
    __syncthreads();
    if (found != INT_MAX) break;
  }
  if (threadIdx.x != 0) return;
  const int32_t token = found != INT_MAX ? found : last_kept;
  Finish(token, logits[token], state, counter, out_token, out_logprob, advance_position);
}

}  // namespace

int64_t SampleScratchBytes(int64_t /*vocab*/) { return kScratchBytes; }

cudaError_t LaunchSample(const float* logits, int64_t vocab, const DeviceSampling& params, uint64_t* counter,
                         int32_t* out_token, float* out_logprob, int32_t* advance_position, void* scratch,
                         cudaStream_t stream) {
  const bool greedy = !(params.temperature > 0.0f);
  if (logits == nullptr || out_token == nullptr || scratch == nullptr || vocab < 1 || vocab > INT_MAX ||
      (!greedy && counter == nullptr)) {
    return cudaErrorInvalidValue;
  }
  const int blocks = Blocks(vocab);
  const int64_t chunk = (vocab + blocks - 1) / blocks;
  const Scratch parts = Carve(scratch);
  // Greedy uses only the done counters; a sampled call also needs the histogram zeroed.
  const size_t control_bytes = greedy ? sizeof(Control::done) : sizeof(Control);
  cudaError_t error = cudaMemsetAsync(parts.control, 0, control_bytes, stream);
  if (error != cudaSuccess) return error;
  const float inverse_temperature = greedy ? 1.0f : 1.0f / params.temperature;  // as the host Sampler
  const bool top_k_on = !greedy && params.top_k > 0 && params.top_k < vocab;
  StatsKernel<<<blocks, kThreads, 0, stream>>>(logits, vocab, chunk, greedy, inverse_temperature, params.top_k,
                                               top_k_on, parts, counter, out_token, out_logprob, advance_position);
  if (greedy) return cudaGetLastError();
  if (top_k_on) {
    for (int pass = 1; pass < kPasses; ++pass) {  // pass 0 ran in StatsKernel
      SelectKernel<false><<<blocks, kThreads, 0, stream>>>(logits, vocab, chunk, inverse_temperature, 1.0f, pass,
                                                           kShift[pass], kBits[pass], parts);
    }
  }
  if (params.top_p < 1.0f) {
    for (int pass = 0; pass < kPasses; ++pass) {
      SelectKernel<true><<<blocks, kThreads, 0, stream>>>(logits, vocab, chunk, inverse_temperature, params.top_p, pass,
                                                          kShift[pass], kBits[pass], parts);
    }
  }
  DrawKernel<<<blocks, kThreads, 0, stream>>>(logits, vocab, chunk, inverse_temperature,
                                              static_cast<double>(params.min_p), params.seed, parts, counter, out_token,
                                              out_logprob, advance_position);
  return cudaGetLastError();
}


namespace {

// One thread per 4 logits: the word is read once per 16 threads (from L2), each disallowed logit
// written once.
__global__ void MaskLogitsKernel(float* logits, int64_t vocab, const uint64_t* allowed) {
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (first >= vocab) return;
  const uint64_t bits = allowed[first / 64] >> (first % 64);
  if ((bits & 0xf) == 0xf) return;
  const int64_t count = vocab - first < 4 ? vocab - first : 4;
  for (int64_t i = 0; i < count; ++i) {
    if (!((bits >> i) & 1)) logits[first + i] = -INFINITY;
  }
}

}  // namespace

cudaError_t LaunchMaskLogits(float* logits, int64_t vocab, const uint64_t* allowed, cudaStream_t stream) {
  if (vocab < 1 || vocab > INT_MAX || !logits || !allowed) return cudaErrorInvalidValue;
  constexpr int kMaskThreads = 256;
  const int64_t threads = (vocab + 3) / 4;
  MaskLogitsKernel<<<static_cast<unsigned>((threads + kMaskThreads - 1) / kMaskThreads), kMaskThreads, 0, stream>>>(logits, vocab, allowed);
  return cudaGetLastError();
}

}  // namespace kiln::cuda
