// GBNF front end: every notation feature, with strings that must and must not match, and the
// errors for malformed grammars.
#include <gtest/gtest.h>

#include "test_util.h"

namespace kiln::constraint {
namespace {

using testing::ErrorOf;
using testing::Matches;
using testing::MustCompile;

TEST(Gbnf, LiteralsAndAlternation) {
  auto g = MustCompile(CompileGbnf(R"(root ::= "yes" | "no" | "maybe")"));
  EXPECT_TRUE(Matches(g, "yes"));
  EXPECT_TRUE(Matches(g, "maybe"));
  EXPECT_FALSE(Matches(g, "ye"));
  EXPECT_FALSE(Matches(g, "yesno"));
  EXPECT_FALSE(Matches(g, ""));
}

TEST(Gbnf, RulesGroupsAndQuantifiers) {
  auto g = MustCompile(CompileGbnf(R"(
    # a comment line
    root  ::= greet ("," ws name)* "!"?   # trailing comment
    greet ::= "hi" | "hello"
    name  ::= [a-z]+
    ws    ::= " "?
  )"));
  EXPECT_TRUE(Matches(g, "hi"));
  EXPECT_TRUE(Matches(g, "hello, bob,alice!"));
  EXPECT_FALSE(Matches(g, "hello,"));
  EXPECT_FALSE(Matches(g, "hello, Bob"));
  EXPECT_FALSE(Matches(g, "hi!!"));
}

TEST(Gbnf, BoundedRepetition) {
  auto g = MustCompile(CompileGbnf(R"(root ::= "a"{2,4} "b"{3} "c"{1,})"));
  EXPECT_TRUE(Matches(g, "aabbbc"));
  EXPECT_TRUE(Matches(g, "aaaabbbccc"));
  EXPECT_FALSE(Matches(g, "abbbc"));      // a{2,4}: one is too few
  EXPECT_FALSE(Matches(g, "aaaaabbbc"));  // five is too many
  EXPECT_FALSE(Matches(g, "aabbc"));      // b{3}: exactly three
  EXPECT_FALSE(Matches(g, "aabbb"));      // c{1,}: at least one
  auto up_to = MustCompile(CompileGbnf(R"(root ::= [0-9]{,2} "x")"));
  EXPECT_TRUE(Matches(up_to, "x"));
  EXPECT_TRUE(Matches(up_to, "42x"));
  EXPECT_FALSE(Matches(up_to, "123x"));
}

TEST(Gbnf, EscapesInLiteralsAndClasses) {
  auto g = MustCompile(CompileGbnf(R"(root ::= "\"q\"\n\t\\" [\x41-\x43] "\u00e9" [\]])"));
  EXPECT_TRUE(Matches(g, "\"q\"\n\t\\B\xC3\xA9]"));
  EXPECT_FALSE(Matches(g, "\"q\"\n\t\\D\xC3\xA9]"));
}

TEST(Gbnf, NegatedClassesAndDotAreUtf8Aware) {
  auto g = MustCompile(CompileGbnf(R"(root ::= [^a-c] . [α-ω])"));
  EXPECT_TRUE(Matches(g, "d\xE2\x82\xAC\xCE\xB2"));  // d € β
  EXPECT_FALSE(Matches(g, "b!\xCE\xB2"));            // b is excluded
  EXPECT_FALSE(Matches(g, "d!b"));                   // b is not in α-ω
  EXPECT_FALSE(Matches(g, "d\xE2\x82\xCE\xB2"));     // truncated € is not a character
  EXPECT_FALSE(Matches(g, "d\xED\xA0\x80\xCE\xB2"));  // a surrogate is not a character
}

TEST(Gbnf, RecursionNestsArbitrarily) {
  auto g = MustCompile(CompileGbnf(R"g(
    root ::= expr
    expr ::= term (("+" | "-") term)*
    term ::= factor (("*" | "/") factor)*
    factor ::= [0-9]+ | "(" expr ")"
  )g"));
  EXPECT_TRUE(Matches(g, "1+2*3"));
  EXPECT_TRUE(Matches(g, "((1+2))*(3-4)/5"));
  EXPECT_TRUE(Matches(g, "(((((((((((7)))))))))))"));
  EXPECT_FALSE(Matches(g, "(1+2"));
  EXPECT_FALSE(Matches(g, "1+"));
  EXPECT_FALSE(Matches(g, "1+2)"));
}

// llama.cpp's grammars/json.gbnf notation (written out here, with bounded whitespace).
constexpr const char* kJsonGbnf = R"(
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

ws ::= | " " | "\n" [ \t]{0,20}
)";

TEST(Gbnf, JsonGrammar) {
  auto g = MustCompile(CompileGbnf(kJsonGbnf));
  EXPECT_TRUE(Matches(g, R"({"a": [1, 2.5, -3e4], "b": {"c": null, "d": "x\"y\u00e9"}})"));
  EXPECT_TRUE(Matches(g, "{}"));
  EXPECT_TRUE(Matches(g, "{\n  \"k\": true\n}"));
  EXPECT_FALSE(Matches(g, R"({"a": 1,})"));
  EXPECT_FALSE(Matches(g, R"({"a" 1})"));
  EXPECT_FALSE(Matches(g, R"(["a"])"));  // root is an object
  EXPECT_FALSE(Matches(g, "{\"a\": \"line\nbreak\"}"));
}

TEST(Gbnf, EmptyAlternativeAndNullableStar) {
  auto g = MustCompile(CompileGbnf("root ::= (\"a\"? \"\")* \"b\"\n"));
  EXPECT_TRUE(Matches(g, "b"));
  EXPECT_TRUE(Matches(g, "aaab"));
  EXPECT_FALSE(Matches(g, "ab a"));
}

TEST(Gbnf, Errors) {
  EXPECT_NE(ErrorOf(CompileGbnf("")).find("empty grammar"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("start ::= \"a\"")).find("no rule 'root'"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= missing")).find("undefined rule 'missing'"), std::string::npos);
  const std::string unterminated = ErrorOf(CompileGbnf("root ::= \"a\"\nx ::= \"abc"));
  EXPECT_NE(unterminated.find("grammar error at 2:7"), std::string::npos) << unterminated;
  EXPECT_NE(unterminated.find("unterminated string literal"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= [a-")).find("unterminated character class"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= (\"a\"")).find("expected ')'"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= \"a\" )")).find("1:14"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root = \"a\"")).find("expected '::='"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= [z-a]")).find("out of order"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= \"a\"{3,1}")).find("n < m"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= \"a\"{0,1000000}")).find("limit of 10000"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= \"a\"\nroot ::= \"b\"")).find("defined twice"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= root \"a\" | \"a\"")).find("left recursion: rule 'root'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= x \"a\"\nx ::= \"b\"? root")).find("left recursion"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= \"\\xZZ\"")).find("hex digits"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= <[1000]>")).find("token references"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= \"a\"" + std::string(100000, '*'))).find("too many quantifiers"),
            std::string::npos);
  EXPECT_NE(ErrorOf(CompileGbnf("root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')')))
                .find("nested deeper"),
            std::string::npos);
}

TEST(Gbnf, SizeLimitsAreErrorsNotBlowups) {
  // Nested counts cost one element per copy (the item becomes a rule), so this stays small...
  auto nested = MustCompile(CompileGbnf("root ::= ((\"a\"{10000}){10000}){10000}"));
  EXPECT_NE(nested, nullptr);
  // ...while 400 separate {0,10000} chains would be 400 * 3 * 10000 elements.
  std::string many = "root ::=";
  for (int i = 0; i < 400; ++i) many += " \"a\"{0,10000}";
  const std::string message = ErrorOf(CompileGbnf(many));
  EXPECT_NE(message.find("grammar too large"), std::string::npos) << message;
}

}  // namespace
}  // namespace kiln::constraint
