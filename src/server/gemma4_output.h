// Gemma 4's chat output split, as it streams, into reasoning, content and tool calls.
//
//   Gemma4OutputParser parser({.tool_calls = true});
//   for (each piece of generated text) {
//     ReplyDelta delta = parser.Feed(piece);   // what became final
//     ... send delta.reasoning, delta.content, delta.tool_calls ...
//   }
//   ReplyDelta rest = parser.Finish();         // what was held back
//
// The wire format (docs/server.md; gemma4.md, "Chat format"), with the special tokens' text kept
// in the stream (GenerationRequest::keep_special_tokens):
//   reasoning   <|channel>thought\n ... <channel|>          (the channel's name line is dropped)
//   tool call   <|tool_call>call:NAME{key:<|"|>text<|"|>,n:42,on:true,list:[1,2],obj:{k:1}}<tool_call|>
// A tool call's arguments are not JSON: keys are bare (or quoted by <|"|>), strings are quoted by
// the <|"|> token, numbers, true, false and null are bare, objects and lists nest. They become a
// JSON object text (keys in the order written). A bare word that is none of those becomes a
// string, as the model meant it.
//
// Nothing is ever lost: a block that does not parse (or a tool call when ParserOptions::
// tool_calls is off, or one cut off by the end of the output) is content, as the raw text.
// Streaming holds back only what may still be the start of a marker ("<|tool" at the end of a
// piece), and a tool call until it is complete; feeding the text in any pieces gives the same
// result as feeding it whole. Pure and single-threaded: one parser per reply.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::server {

struct ParsedToolCall {
  std::string name;
  std::string arguments;  // a JSON object, as text
};

// What became final since the last call: text for each channel, and complete tool calls.
struct ReplyDelta {
  std::string reasoning;
  std::string content;
  std::vector<ParsedToolCall> tool_calls;
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
  void Append(ReplyDelta other);
};

struct ParserOptions {
  bool tool_calls = true;  // parse <|tool_call> blocks (off: they are content)
};

class Gemma4OutputParser {
 public:
  explicit Gemma4OutputParser(ParserOptions options = {}) : options_(options) {}

  ReplyDelta Feed(std::string_view text);
  // The end of the output: text held back is released (an unfinished tool call as content).
  ReplyDelta Finish();

 private:
  enum class State { kContent, kChannelName, kReasoning, kToolCall };
  // Consumes pending_ as far as it can be decided; `at_end`: no more text comes.
  void Drain(ReplyDelta* out, bool at_end);

  ParserOptions options_;
  State state_ = State::kContent;
  std::string pending_;  // text not yet decided
};

// Parses one tool call's body, the text between <|tool_call> and <tool_call|>
// ("call:NAME{...}"); nullopt when it is not one.
std::optional<ParsedToolCall> ParseToolCallBody(std::string_view body);

// Gemma 4's argument syntax (the text of one value, e.g. "{a:<|"|>x<|"|>}") as JSON text;
// nullopt when malformed or more than 64 containers deep.
std::optional<std::string> ArgumentsToJson(std::string_view text);

}  // namespace kiln::server
