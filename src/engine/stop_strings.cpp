#include "engine/stop_strings.h"

#include <algorithm>

namespace kiln {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings) {
  for (std::string& stop : stop_strings) {
    if (!stop.empty()) stop_strings_.push_back(std::move(stop));
  }
}

std::string StopStringMatcher::Push(std::string_view text) {
  if (stopped_) return "";
  pending_.append(text);
  // A stop string can only end inside the new text, but it may start anywhere in pending_.
  size_t best = std::string::npos;
  for (const std::string& stop : stop_strings_) {
    const size_t at = pending_.find(stop);
    if (at == std::string::npos) continue;
    if (at < best || (at == best && stop.size() > matched_.size())) {
      best = at;
      matched_ = stop;
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string released = pending_.substr(0, best);
    pending_.clear();
    return released;
  }
  // Hold back the longest suffix that could still grow into a stop string.
  size_t hold = 0;
  for (const std::string& stop : stop_strings_) {
    const size_t longest = std::min(stop.size() - 1, pending_.size());
    for (size_t length = longest; length > hold; --length) {
      if (std::string_view(pending_).substr(pending_.size() - length) == std::string_view(stop).substr(0, length)) {
        hold = length;
        break;
      }
    }
  }
  std::string released = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return released;
}

std::string StopStringMatcher::Flush() {
  if (stopped_) return "";
  std::string released = std::move(pending_);
  pending_.clear();
  return released;
}

}  // namespace kiln
