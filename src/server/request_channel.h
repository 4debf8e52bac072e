// The bridge between one request's model callbacks (run on the model's driver thread) and the
// HTTP thread that answers it: the callbacks push, the HTTP thread waits and takes. Pushing never
// blocks (the driver thread serves every sequence), so the queue is unbounded; its length is
// bounded by the request's max_tokens.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "kiln/kiln.h"

namespace kiln::server {

class RequestChannel {
 public:
  void PushToken(const TokenEvent& token) {
    std::lock_guard<std::mutex> lock(mutex_);
    tokens_.push_back(token);
    ready_.notify_all();
  }
  void Finish(const Completion& completion) {
    std::lock_guard<std::mutex> lock(mutex_);
    completion_ = completion;
    ready_.notify_all();
  }
  // Moves the tokens that arrived into `tokens` and, once the request ended, its completion into
  // `done`. Waits up to `timeout` while there is nothing; returns whether anything was taken.
  bool Take(std::deque<TokenEvent>* tokens, std::optional<Completion>* done, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait_for(lock, timeout, [&] { return !tokens_.empty() || completion_.has_value(); });
    if (tokens_.empty() && !completion_) return false;
    for (TokenEvent& t : tokens_) tokens->push_back(std::move(t));
    tokens_.clear();
    if (completion_) *done = std::move(completion_);
    completion_.reset();
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<TokenEvent> tokens_;
  std::optional<Completion> completion_;
};

}  // namespace kiln::server
