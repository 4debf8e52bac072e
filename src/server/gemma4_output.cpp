#include "server/gemma4_output.h"

#include <nlohmann/json.hpp>

namespace kiln::server {
namespace {

using nlohmann::ordered_json;

constexpr std::string_view kChannelOpen = "<|channel>";
constexpr std::string_view kChannelClose = "<channel|>";
constexpr std::string_view kToolCallOpen = "<|tool_call>";
constexpr std::string_view kToolCallClose = "<tool_call|>";
constexpr std::string_view kQuote = "<|\"|>";
constexpr int kMaxDepth = 64;

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

// Where a suffix of `text` that may still grow into one of `markers` begins (text.size() if none).
// Every marker has its only '<' first, so such a suffix starts at the last '<'.
size_t HeldBackFrom(std::string_view text, std::initializer_list<std::string_view> markers) {
  const size_t last = text.rfind('<');
  if (last == std::string_view::npos) return text.size();
  const std::string_view tail = text.substr(last);
  for (std::string_view marker : markers) {
    if (tail.size() < marker.size() && marker.substr(0, tail.size()) == tail) return last;
  }
  return text.size();
}

// A recursive-descent reader of Gemma 4's argument syntax (gemma4_output.h).
class ArgumentReader {
 public:
  explicit ArgumentReader(std::string_view text) : text_(text) {}

  std::optional<ordered_json> Whole() {
    std::optional<ordered_json> value = Value(0);
    SkipSpace();
    if (!value || pos_ != text_.size()) return std::nullopt;
    return value;
  }

 private:
  std::optional<ordered_json> Object(int depth) {
    if (depth >= kMaxDepth || !Take('{')) return std::nullopt;
    ordered_json object = ordered_json::object();
    SkipSpace();
    if (Take('}')) return object;
    while (true) {
      std::optional<std::string> key = Key();
      SkipSpace();
      if (!key || !Take(':')) return std::nullopt;
      std::optional<ordered_json> value = Value(depth + 1);
      if (!value) return std::nullopt;
      object[*key] = std::move(*value);
      SkipSpace();
      if (Take('}')) return object;
      if (!Take(',')) return std::nullopt;
      SkipSpace();
    }
  }
  std::optional<ordered_json> Value(int depth) {
    SkipSpace();
    if (pos_ == text_.size()) return std::nullopt;
    if (text_.substr(pos_).starts_with(kQuote)) {
      std::optional<std::string> text = Quoted();
      if (!text) return std::nullopt;
      return ordered_json(*text);
    }
    if (text_[pos_] == '{') return Object(depth);
    if (text_[pos_] == '[') return List(depth);
    return Bare();
  }
  std::optional<ordered_json> List(int depth) {
    if (depth >= kMaxDepth || !Take('[')) return std::nullopt;
    ordered_json list = ordered_json::array();
    SkipSpace();
    if (Take(']')) return list;
    while (true) {
      std::optional<ordered_json> value = Value(depth + 1);
      if (!value) return std::nullopt;
      list.push_back(std::move(*value));
      SkipSpace();
      if (Take(']')) return list;
      if (!Take(',')) return std::nullopt;
    }
  }
  // A word up to the next delimiter: true, false, null, a number or a JSON scalar; else the
  // word itself as a string.
  std::optional<ordered_json> Bare() {
    const size_t end = text_.find_first_of(",}]", pos_);
    const std::string_view word = Trim(text_.substr(pos_, end == std::string_view::npos ? std::string_view::npos : end - pos_));
    if (word.empty()) return std::nullopt;
    pos_ = end == std::string_view::npos ? text_.size() : end;
    ordered_json scalar = ordered_json::parse(word, nullptr, /*allow_exceptions=*/false);
    if (!scalar.is_discarded() && !scalar.is_structured()) return scalar;
    return ordered_json(std::string(word));
  }
  std::optional<std::string> Quoted() {
    pos_ += kQuote.size();
    const size_t end = text_.find(kQuote, pos_);
    if (end == std::string_view::npos) return std::nullopt;
    std::string text(text_.substr(pos_, end - pos_));
    pos_ = end + kQuote.size();
    return text;
  }
  std::optional<std::string> Key() {
    if (text_.substr(pos_).starts_with(kQuote)) return Quoted();
    const size_t end = text_.find_first_of(":{}[],", pos_);
    if (end == std::string_view::npos) return std::nullopt;
    const std::string_view key = Trim(text_.substr(pos_, end - pos_));
    if (key.empty()) return std::nullopt;
    pos_ = end;
    return std::string(key);
  }
  bool Take(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void SkipSpace() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

std::string Dump(const ordered_json& value) { return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace); }

}  // namespace

void ReplyDelta::Append(ReplyDelta other) {
  reasoning += other.reasoning;
  content += other.content;
  for (ParsedToolCall& call : other.tool_calls) tool_calls.push_back(std::move(call));
}

std::optional<std::string> ArgumentsToJson(std::string_view text) {
  std::optional<ordered_json> value = ArgumentReader(text).Whole();
  if (!value) return std::nullopt;
  return Dump(*value);
}

std::optional<ParsedToolCall> ParseToolCallBody(std::string_view body) {
  body = Trim(body);
  if (!body.starts_with("call:")) return std::nullopt;
  body.remove_prefix(5);
  const size_t brace = body.find('{');
  if (brace == std::string_view::npos) return std::nullopt;
  const std::string_view name = Trim(body.substr(0, brace));
  if (name.empty()) return std::nullopt;
  for (char c : name) {
    const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!word) return std::nullopt;
  }
  std::optional<ordered_json> arguments = ArgumentReader(body.substr(brace)).Whole();
  if (!arguments || !arguments->is_object()) return std::nullopt;
  return ParsedToolCall{std::string(name), Dump(*arguments)};
}

ReplyDelta Gemma4OutputParser::Feed(std::string_view text) {
  pending_.append(text);
  ReplyDelta out;
  Drain(&out, /*at_end=*/false);
  return out;
}

ReplyDelta Gemma4OutputParser::Finish() {
  ReplyDelta out;
  Drain(&out, /*at_end=*/true);
  return out;
}

void Gemma4OutputParser::Drain(ReplyDelta* out, bool at_end) {
  while (!pending_.empty()) {
    const std::string_view text = pending_;
    switch (state_) {
      case State::kContent: {
        const size_t channel = text.find(kChannelOpen);
        const size_t call = options_.tool_calls ? text.find(kToolCallOpen) : std::string_view::npos;
        if (channel != std::string_view::npos || call != std::string_view::npos) {
          const bool is_channel = channel < call;
          const size_t at = is_channel ? channel : call;
          out->content.append(text.substr(0, at));
          pending_.erase(0, at + (is_channel ? kChannelOpen : kToolCallOpen).size());
          state_ = is_channel ? State::kChannelName : State::kToolCall;
          continue;
        }
        const size_t keep = at_end ? text.size()
                                   : (options_.tool_calls ? HeldBackFrom(text, {kChannelOpen, kToolCallOpen})
                                                          : HeldBackFrom(text, {kChannelOpen}));
        out->content.append(text.substr(0, keep));
        pending_.erase(0, keep);
        return;
      }
      case State::kChannelName: {
        // "thought\n" names the channel; a channel closed before its name line ends is empty.
        const size_t newline = text.find('\n');
        const size_t close = text.find(kChannelClose);
        if (close != std::string_view::npos && close < newline) {
          pending_.erase(0, close + kChannelClose.size());
          state_ = State::kContent;
          continue;
        }
        if (newline != std::string_view::npos) {
          pending_.erase(0, newline + 1);
          state_ = State::kReasoning;
          continue;
        }
        if (!at_end) return;
        state_ = State::kReasoning;  // no name line: all of it is the thought
        continue;
      }
      case State::kReasoning: {
        const size_t close = text.find(kChannelClose);
        if (close != std::string_view::npos) {
          out->reasoning.append(text.substr(0, close));
          pending_.erase(0, close + kChannelClose.size());
          state_ = State::kContent;
          continue;
        }
        const size_t keep = at_end ? text.size() : HeldBackFrom(text, {kChannelClose});
        out->reasoning.append(text.substr(0, keep));
        pending_.erase(0, keep);
        return;
      }
      case State::kToolCall: {
        const size_t close = text.find(kToolCallClose);
        if (close == std::string_view::npos && !at_end) return;  // the call is not complete yet
        const std::string_view body = text.substr(0, close);
        std::optional<ParsedToolCall> call;
        if (close != std::string_view::npos) call = ParseToolCallBody(body);
        if (call) {
          out->tool_calls.push_back(std::move(*call));
        } else {
          // Never lose text: what did not parse is content, as written.
          out->content.append(kToolCallOpen);
          out->content.append(close == std::string_view::npos ? text : text.substr(0, close + kToolCallClose.size()));
        }
        pending_.erase(0, close == std::string_view::npos ? pending_.size() : close + kToolCallClose.size());
        state_ = State::kContent;
        continue;
      }
    }
  }
}

}  // namespace kiln::server
