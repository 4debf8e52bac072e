// Gemma 4's output parser on exact strings: reasoning, content and tool calls, whole and in
// every split a stream could cut them at.
#include <gtest/gtest.h>

#include "server/gemma4_output.h"

namespace kiln::server {
namespace {

// Feeds `text` whole, then once split at every position; every split must give the same reply.
ReplyDelta ParseWhole(std::string_view text, ParserOptions options = {}) {
  Gemma4OutputParser parser(options);
  ReplyDelta out = parser.Feed(text);
  out.Append(parser.Finish());
  return out;
}

void ExpectSame(const ReplyDelta& a, const ReplyDelta& b, const std::string& where) {
  EXPECT_EQ(a.reasoning, b.reasoning) << where;
  EXPECT_EQ(a.content, b.content) << where;
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size()) << where;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name) << where;
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments) << where;
  }
}

ReplyDelta Parse(std::string_view text, ParserOptions options = {}) {
  const ReplyDelta whole = ParseWhole(text, options);
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    Gemma4OutputParser parser(options);
    ReplyDelta split = parser.Feed(text.substr(0, cut));
    split.Append(parser.Feed(text.substr(cut)));
    split.Append(parser.Finish());
    ExpectSame(whole, split, "cut at " + std::to_string(cut));
  }
  // One byte at a time, as the slowest stream.
  Gemma4OutputParser parser(options);
  ReplyDelta bytes;
  for (char c : text) bytes.Append(parser.Feed(std::string_view(&c, 1)));
  bytes.Append(parser.Finish());
  ExpectSame(whole, bytes, "byte by byte");
  return whole;
}

TEST(Gemma4Output, PlainTextIsContent) {
  const ReplyDelta out = Parse("The jury < said 1 <| no.");
  EXPECT_EQ(out.content, "The jury < said 1 <| no.");
  EXPECT_EQ(out.reasoning, "");
  EXPECT_TRUE(out.tool_calls.empty());
}

TEST(Gemma4Output, ThoughtChannelIsReasoningWithoutItsName) {
  const ReplyDelta out = Parse("<|channel>thought\nThey asked for 2+2.<channel|>It is 4.");
  EXPECT_EQ(out.reasoning, "They asked for 2+2.");
  EXPECT_EQ(out.content, "It is 4.");
}

TEST(Gemma4Output, AnEmptyChannelLeavesNothing) {
  const ReplyDelta out = Parse("<|channel>thought\n<channel|>Hi");
  EXPECT_EQ(out.reasoning, "");
  EXPECT_EQ(out.content, "Hi");
  EXPECT_EQ(Parse("<|channel><channel|>Hi").content, "Hi");
}

TEST(Gemma4Output, AnUnclosedThoughtIsReasoningToTheEnd) {
  const ReplyDelta out = Parse("<|channel>thought\nstill thinking <chan");
  EXPECT_EQ(out.reasoning, "still thinking <chan");
  EXPECT_EQ(out.content, "");
}

TEST(Gemma4Output, HeldBackOnlyWhileAMarkerMayBegin) {
  Gemma4OutputParser parser;
  EXPECT_EQ(parser.Feed("Hello <|tool").content, "Hello ");  // "<|tool" may become <|tool_call>
  EXPECT_EQ(parser.Feed("s> here").content, "<|tools> here");  // it did not
  EXPECT_EQ(parser.Feed("<").content, "");
  EXPECT_EQ(parser.Finish().content, "<");
}

TEST(Gemma4Output, ToolCallBecomesJsonArguments) {
  const ReplyDelta out = Parse(
      "<|tool_call>call:get_weather{city:<|\"|>Paris, FR<|\"|>,days:3,metric:true,"
      "hours:[1,2.5],where:{lat:48.8,name:<|\"|>x<|\"|>},note:null}<tool_call|>");
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].name, "get_weather");
  EXPECT_EQ(out.tool_calls[0].arguments,
            R"({"city":"Paris, FR","days":3,"metric":true,"hours":[1,2.5],"where":{"lat":48.8,"name":"x"},"note":null})");
  EXPECT_EQ(out.content, "");
}

TEST(Gemma4Output, TwoCallsAndTextAroundThem) {
  const ReplyDelta out = Parse(
      "Let me check.<|tool_call>call:a{}<tool_call|><|tool_call>call:b{q:<|\"|>{not: json}<|\"|>}<tool_call|>");
  EXPECT_EQ(out.content, "Let me check.");
  ASSERT_EQ(out.tool_calls.size(), 2u);
  EXPECT_EQ(out.tool_calls[0].name, "a");
  EXPECT_EQ(out.tool_calls[0].arguments, "{}");
  EXPECT_EQ(out.tool_calls[1].name, "b");
  EXPECT_EQ(out.tool_calls[1].arguments, R"({"q":"{not: json}"})");
}

TEST(Gemma4Output, ReasoningThenToolCall) {
  const ReplyDelta out = Parse("<|channel>thought\nneed weather<channel|><|tool_call>call:w{c:<|\"|>Oslo<|\"|>}<tool_call|>");
  EXPECT_EQ(out.reasoning, "need weather");
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].arguments, R"({"c":"Oslo"})");
}

TEST(Gemma4Output, MalformedOrUnfinishedCallsStayContentAsWritten) {
  EXPECT_EQ(Parse("<|tool_call>call:f{a:<tool_call|>rest").content, "<|tool_call>call:f{a:<tool_call|>rest");
  EXPECT_EQ(Parse("<|tool_call>nocall{}<tool_call|>").content, "<|tool_call>nocall{}<tool_call|>");
  EXPECT_EQ(Parse("<|tool_call>call:f{a:1}").content, "<|tool_call>call:f{a:1}");  // cut off by the end
  EXPECT_EQ(Parse("<|tool_call>call:bad name{}<tool_call|>").content, "<|tool_call>call:bad name{}<tool_call|>");
  EXPECT_TRUE(Parse("<|tool_call>call:f{a:1}").tool_calls.empty());
}

TEST(Gemma4Output, ToolCallsOffLeavesThemContent) {
  const ReplyDelta out = Parse("<|tool_call>call:f{}<tool_call|>", {.tool_calls = false});
  EXPECT_EQ(out.content, "<|tool_call>call:f{}<tool_call|>");
  EXPECT_TRUE(out.tool_calls.empty());
}

TEST(Gemma4Output, ArgumentsSyntax) {
  EXPECT_EQ(ArgumentsToJson("{ a : 1 , b : [ ] }"), R"({"a":1,"b":[]})");
  EXPECT_EQ(ArgumentsToJson("{<|\"|>spaced key<|\"|>:-2e3}"), R"({"spaced key":-2000.0})");
  EXPECT_EQ(ArgumentsToJson("{word:hello there}"), R"({"word":"hello there"})");  // a bare word is a string
  EXPECT_EQ(ArgumentsToJson("{s:\"json\"}"), R"({"s":"json"})");
  EXPECT_EQ(ArgumentsToJson("{a:1"), std::nullopt);
  EXPECT_EQ(ArgumentsToJson("{a:<|\"|>open}"), std::nullopt);
  EXPECT_EQ(ArgumentsToJson("{:1}"), std::nullopt);
  EXPECT_EQ(ArgumentsToJson("{a:1}}"), std::nullopt);
  EXPECT_EQ(ArgumentsToJson(std::string(65, '[') + std::string(65, ']')), std::nullopt);  // 65 containers deep
  EXPECT_EQ(ArgumentsToJson(std::string(64, '[') + std::string(64, ']')), std::string(64, '[') + std::string(64, ']'));
}

}  // namespace
}  // namespace kiln::server
