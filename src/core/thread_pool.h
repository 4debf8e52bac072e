// A persistent pool of worker threads for data-parallel kernels.
//
// Created once per backend; ParallelFor splits [0, count) into contiguous ranges, runs them on
// the workers and the calling thread, and returns when all are done. No allocation per call:
// the task is a FunctionRef and workers wake on a generation counter. Workers spin briefly on
// that counter before sleeping, because a decode step issues a few hundred short parallel loops
// and a condition-variable wake-up per loop would cost more than many of the loops themselves.
//
//   pool.ParallelFor(rows, [&](int64_t begin, int64_t end) { for (r = begin..end) ... });
//
// Not reentrant: a task must not call ParallelFor on the same pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include "core/function_ref.h"
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln {

class ThreadPool {
 public:
  // num_threads counts the caller: 1 means no workers. 0 picks the hardware concurrency.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) over disjoint ranges covering [0, count). Ranges are at least
  // min_grain long so tiny loops stay on the caller. The range is cut into a few chunks per
  // thread that threads claim as they go, so a thread slowed down (by the OS, or by a busier
  // memory channel) does not hold the others back.
  void ParallelFor(int64_t count, FunctionRef<void(int64_t, int64_t)> fn,
                   int64_t min_grain = 1);

 private:
  void WorkerLoop();
  void RunChunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;                  // guards sleepers_ and the sleep/wake hand-off
  std::condition_variable wake_;
  int sleepers_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  // The current job (valid while pending_ > 0).
  const FunctionRef<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_count_ = 0;
  int64_t job_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
};

}  // namespace kiln
