// Submits requests to a Model all at once (so they share its scheduler's steps) and waits for
// every completion; returns them in request order. Tests of speculation across a batch use it.
#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <vector>

#include "kiln/kiln.h"

namespace kiln {

inline std::vector<Completion> SubmitTogether(Model& model, const std::vector<GenerationRequest>& requests) {
  std::mutex mutex;
  std::condition_variable all_done;
  std::map<size_t, Completion> done;
  for (size_t i = 0; i < requests.size(); ++i) {
    GenerationRequest request = requests[i];
    request.on_done = [&, i](const Completion& completion) {
      std::lock_guard<std::mutex> lock(mutex);
      done[i] = completion;
      all_done.notify_all();
    };
    auto submitted = model.Submit(std::move(request));
    EXPECT_TRUE(submitted.has_value()) << submitted.error().ToString();
    if (!submitted.has_value()) {
      std::lock_guard<std::mutex> lock(mutex);
      done[i] = Completion{};
    }
  }
  std::unique_lock<std::mutex> lock(mutex);
  all_done.wait(lock, [&] { return done.size() == requests.size(); });
  std::vector<Completion> out;
  for (auto& [index, completion] : done) out.push_back(std::move(completion));
  return out;
}

}  // namespace kiln
