// Stop strings over streamed text: finds a stop string even when it spans several tokens, and
// holds back just enough text that nothing after a stop string is ever released.
//
//   StopStringMatcher stops({"\nUser:", "###"});
//   for (...) {
//     std::cout << stops.Push(decoder.Push(id));   // text safe to show now
//     if (stops.stopped()) break;                   // the stop string itself is never released
//   }
//   std::cout << stops.Flush();                     // no stop: the held-back tail
//
// Push releases everything except the longest suffix of the pending text that is a prefix of
// some stop string. When a stop string occurs, the text before its first occurrence (earliest
// start; the longest stop string among those starting there) is released and the matcher
// stops: later Push calls release nothing. Input is UTF-8 and so is every release: a held-back
// suffix equals the start of a (valid UTF-8) stop string, so it never splits a character.
// Empty stop strings are ignored. Not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  // Appends text; returns the text that became safe to release.
  std::string Push(std::string_view text);
  // Releases what is held back (nothing once stopped).
  std::string Flush();

  bool stopped() const { return stopped_; }
  // The stop string that matched ("" before a match).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stop_strings_;
  std::string pending_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace kiln
