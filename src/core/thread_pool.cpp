#include "core/thread_pool.h"

#include <algorithm>

namespace kiln {

namespace {
// About 50-100 microseconds of spinning before a worker sleeps.
constexpr int kSpinIterations = 20000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i + 1 < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::RunChunks() {
  // Chunk c covers [count*c/chunks, count*(c+1)/chunks).
  for (;;) {
    const int64_t chunk = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (chunk >= job_chunks_) return;
    const int64_t begin = job_count_ * chunk / job_chunks_;
    const int64_t end = job_count_ * (chunk + 1) / job_chunks_;
    if (begin < end) (*job_)(begin, end);
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    uint64_t generation;
    int spins = 0;
    while ((generation = generation_.load(std::memory_order_acquire)) == seen) {
      if (stopping_.load(std::memory_order_acquire)) return;
      if (++spins < kSpinIterations) {
        CpuRelax();
        continue;
      }
      // The predicate is re-checked under the mutex that ParallelFor takes to notify, so a
      // new job published between the check and the wait is never missed.
      std::unique_lock<std::mutex> lock(mutex_);
      ++sleepers_;
      wake_.wait(lock, [&] {
        return generation_.load(std::memory_order_acquire) != seen || stopping_.load(std::memory_order_acquire);
      });
      --sleepers_;
      spins = 0;
    }
    seen = generation;
    RunChunks();
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::ParallelFor(int64_t count, FunctionRef<void(int64_t, int64_t)> fn, int64_t min_grain) {
  if (count <= 0) return;
  const int64_t max_shares = std::max<int64_t>(1, count / std::max<int64_t>(1, min_grain));
  const int shares = static_cast<int>(std::min<int64_t>(num_threads(), max_shares));
  if (shares == 1) {
    fn(0, count);
    return;
  }
  job_ = &fn;
  job_count_ = count;
  job_chunks_ = std::min<int64_t>(max_shares, static_cast<int64_t>(shares) * 4);
  next_chunk_.store(0, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);  // publishes the job fields above
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (sleepers_ > 0) wake_.notify_all();
  }
  RunChunks();
  while (pending_.load(std::memory_order_acquire) != 0) CpuRelax();
  job_ = nullptr;
}

}  // namespace kiln
