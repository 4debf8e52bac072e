#include "core/thread_pool.h"

#include <algorithm>

namespace kiln {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i + 1 < num_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::RunShare(int share_index) {
  // Share i covers [count*i/shares, count*(i+1)/shares).
  const int64_t begin = job_count_ * share_index / job_shares_;
  const int64_t end = job_count_ * (share_index + 1) / job_shares_;
  if (begin < end) (*job_)(begin, end);
}

void ThreadPool::WorkerLoop(int worker_index) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
    if (stopping_) return;
    seen = generation_;
    const int share = worker_index + 1;  // share 0 is the caller's
    const bool has_share = share < job_shares_;
    lock.unlock();
    if (has_share) RunShare(share);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::ParallelFor(int64_t count, FunctionRef<void(int64_t, int64_t)> fn,
                             int64_t min_grain) {
  if (count <= 0) return;
  const int64_t max_shares = std::max<int64_t>(1, count / std::max<int64_t>(1, min_grain));
  const int shares = static_cast<int>(std::min<int64_t>(num_threads(), max_shares));
  if (shares == 1) {
    fn(0, count);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_count_ = count;
    job_shares_ = shares;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  RunShare(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
}

}  // namespace kiln
