// Regex front end: each supported feature with matching and non-matching strings, and refusals
// of what cannot be matched by an automaton (or is not supported) by name.
#include <gtest/gtest.h>

#include "test_util.h"

namespace kiln::constraint {
namespace {

using testing::ErrorOf;
using testing::Matches;
using testing::MustCompile;

TEST(Regex, LiteralsAlternationAndGroups) {
  auto g = MustCompile(CompileRegex("(cat|dog)s?|bird"));
  EXPECT_TRUE(Matches(g, "cat"));
  EXPECT_TRUE(Matches(g, "dogs"));
  EXPECT_TRUE(Matches(g, "bird"));
  EXPECT_FALSE(Matches(g, "birds"));
  EXPECT_FALSE(Matches(g, "a cat"));  // anchors are implicit: the whole output must match
}

TEST(Regex, ClassesAndShorthands) {
  auto g = MustCompile(CompileRegex(R"(\d{3}-\w+\s[^0-9\s][a-c\d]\D\W\S)"));
  EXPECT_TRUE(Matches(g, "123-ab_9 x5b!y"));
  EXPECT_FALSE(Matches(g, "12-ab x5b!y"));    // \d{3}
  EXPECT_FALSE(Matches(g, "123-ab 15b!y"));   // [^0-9\s] refuses a digit
  EXPECT_FALSE(Matches(g, "123-ab x55!y"));   // \D refuses a digit
  EXPECT_FALSE(Matches(g, "123-ab x5bay"));   // \W refuses a letter
  auto in_class = MustCompile(CompileRegex(R"([\D]+)"));
  EXPECT_TRUE(Matches(in_class, "ab\xC3\xA9"));
  EXPECT_FALSE(Matches(in_class, "a1"));
}

TEST(Regex, DotAndEscapes) {
  auto g = MustCompile(CompileRegex(R"(a.c\.\x41\u00e9\t\*\(\))"));
  EXPECT_TRUE(Matches(g, "a\xE2\x82\xAC" "c.A\xC3\xA9\t*()"));
  EXPECT_FALSE(Matches(g, "a\nc.A\xC3\xA9\t*()"));  // . excludes newline
  EXPECT_FALSE(Matches(g, "abcxA\xC3\xA9\t*()"));
}

TEST(Regex, Quantifiers) {
  auto g = MustCompile(CompileRegex("a{2}b{1,3}c{2,}d*?e+f?"));
  EXPECT_TRUE(Matches(g, "aabccef"));
  EXPECT_TRUE(Matches(g, "aabbbcccccdddee"));
  EXPECT_FALSE(Matches(g, "abccef"));
  EXPECT_FALSE(Matches(g, "aabbbbccef"));
  EXPECT_FALSE(Matches(g, "aabcef"));
  EXPECT_FALSE(Matches(g, "aabccf"));
}

TEST(Regex, AnchorsAtTheEndsAreAccepted) {
  auto g = MustCompile(CompileRegex("^[a-z]+@example\\.com$"));
  EXPECT_TRUE(Matches(g, "bob@example.com"));
  EXPECT_FALSE(Matches(g, "bob@example.org"));
  auto named = MustCompile(CompileRegex("(?<year>\\d{4})-(?:\\d{2})"));
  EXPECT_TRUE(Matches(named, "2024-05"));
}

TEST(Regex, AmbiguityIsFine) {
  auto g = MustCompile(CompileRegex("(a|ab)(c|bcd)(d*)"));
  EXPECT_TRUE(Matches(g, "abcd"));
  EXPECT_TRUE(Matches(g, "abcdddd"));
  EXPECT_FALSE(Matches(g, "abd"));
}

TEST(Regex, RefusalsByName) {
  EXPECT_NE(ErrorOf(CompileRegex("(a)\\1")).find("backreferences"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("a(?=b)")).find("lookahead"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("(?<!a)b")).find("lookbehind"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("\\bword")).find("word boundaries"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("a^b")).find("anchor '^'"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("a$b")).find("anchor '$'"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("a++")).find("possessive"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("\\p{L}")).find("Unicode property"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("(?i)abc")).find("group flags"), std::string::npos);
}

TEST(Regex, MalformedPatterns) {
  const std::string unbalanced = ErrorOf(CompileRegex("ab)c"));
  EXPECT_NE(unbalanced.find("regex error at 1:3"), std::string::npos) << unbalanced;
  EXPECT_NE(unbalanced.find("unbalanced ')'"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("(ab")).find("unterminated group"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("[ab")).find("unterminated character class"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("*a")).find("nothing to repeat"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("a{3,1}")).find("n < m"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("a{0,1000000}")).find("limit of 10000"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("\\x4")).find("hex digits"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex("a" + std::string(100000, '?'))).find("too many quantifiers"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileRegex(std::string(500, '(') + std::string(500, ')'))).find("nested deeper"),
            std::string::npos);
}

}  // namespace
}  // namespace kiln::constraint
