// The plain-token shortcut of the mask (plain_text.h): plain tokens decided by character count
// where every plain character leads to one state, the others walked in their own trie. Checked
// token by token against a reference that reads every token's bytes through a separate
// recognizer (allowed iff the recognizer is still alive after them), on random walks through
// string-heavy grammars over a vocabulary built to hit every edge: multi-byte characters of each
// length, lone lead and continuation bytes, quotes, backslashes, newlines, tokens of exactly 16
// and of more than 16 characters.
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "constraint/matcher.h"
#include "constraint/plain_text.h"
#include "test_util.h"

namespace kiln::constraint {
namespace {

using testing::AfterBytes;
using testing::Differences;
using testing::MustCompile;
using testing::ReferenceMask;

TEST(PlainCharCountTest, CountsCharactersOfPlainTokensOnly) {
  EXPECT_EQ(PlainCharCount(" weather"), 8);
  EXPECT_EQ(PlainCharCount("\xC3\xA9\xE6\x9D\xB1\xF0\x9D\x84\x9E"), 3);  // é東𝄞: 2, 3 and 4 bytes
  EXPECT_EQ(PlainCharCount(std::string(16, 'a')), 16);
  EXPECT_EQ(PlainCharCount(std::string(17, 'a')), 0);  // too long: walked, not counted
  EXPECT_EQ(PlainCharCount(""), 0);
  EXPECT_EQ(PlainCharCount("a\"b"), 0);
  EXPECT_EQ(PlainCharCount("a\\n"), 0);
  EXPECT_EQ(PlainCharCount("a\n"), 0);
  EXPECT_EQ(PlainCharCount("\x7F"), 0);
  EXPECT_EQ(PlainCharCount("\xC3"), 0);          // lead byte alone (byte-fallback token)
  EXPECT_EQ(PlainCharCount("\xA9"), 0);          // continuation byte alone
  EXPECT_EQ(PlainCharCount("\xC0\xAF"), 0);      // overlong '/'
  EXPECT_EQ(PlainCharCount("\xED\xA0\x80"), 0);  // surrogate U+D800
  EXPECT_EQ(PlainCharCount("\xF4\x90\x80\x80"), 0);  // past U+10FFFF
}

TEST(PlainSuccessorTest, FindsTheOneStateEveryPlainCharacterReaches) {
  {  // A string body loops to itself.
    Recognizer rec(MustCompile(CompileRegex(R"("[^"\\]*")")));
    const int32_t body = AfterBytes(rec, "\"");
    EXPECT_EQ(PlainSuccessor(rec, body), body);
  }
  {  // A bounded count moves one state per character, then refuses them all.
    Recognizer rec(MustCompile(CompileRegex(".{0,2}")));
    const int32_t s0 = rec.initial_state();
    const int32_t s1 = PlainSuccessor(rec, s0);
    ASSERT_GE(s1, 0);
    EXPECT_NE(s1, s0);
    EXPECT_EQ(s1, AfterBytes(rec, "\xF0\x9D\x84\x9E"));
    const int32_t s2 = PlainSuccessor(rec, s1);
    ASSERT_GE(s2, 0);
    EXPECT_EQ(PlainSuccessor(rec, s2), Recognizer::kDead);
  }
  // Plain characters that part ways: only some letters, only one multi-byte character, a
  // 3-byte character refused after its second byte.
  for (const char* regex : {"[a-z]*", "é*", "[^\\u4E00-\\u4E0F\"]*"}) {
    Recognizer rec(MustCompile(CompileRegex(regex)));
    EXPECT_EQ(PlainSuccessor(rec, rec.initial_state()), kMixedSuccessor) << regex;
  }
  {  // Structure: a literal takes one character only.
    Recognizer rec(MustCompile(CompileJsonSchema(R"({"type": "object", "properties": {"a": {"type": "string"}}})")));
    EXPECT_EQ(PlainSuccessor(rec, AfterBytes(rec, "{")), kMixedSuccessor);
    const int32_t body = AfterBytes(rec, "{\"a\": \"");
    EXPECT_EQ(PlainSuccessor(rec, body), body);
  }
}

// Pieces to build tokens from: plain ASCII, plain multi-byte characters of 2, 3 and 4 bytes, and
// everything that is not plain.
std::vector<std::optional<std::string>> EdgeVocabulary(uint32_t seed) {
  const std::vector<std::string> pieces = {"a", "b", "z", "Q", " ", "0", "7", "-", ".", ":", ",", "{", "}",
                                           "[", "]", "\xC3\xA9", "\xE6\x9D\xB1", "\xF0\x9D\x84\x9E", "\"",
                                           "\\", "\n", "\t", "\xC3", "\xA9", "\xE6\x9D", "\x7F"};
  std::vector<std::optional<std::string>> v = {std::nullopt, std::nullopt};  // <pad>, <eos>
  for (const std::string& p : pieces) v.push_back(p);
  v.push_back(std::string(16, 'a'));
  v.push_back(std::string(17, 'a'));
  v.push_back(std::string(20, ' '));
  v.push_back("");
  std::mt19937 rng(seed);
  std::set<std::string> seen;
  while (v.size() < 700) {
    std::string token;
    const int n = 1 + static_cast<int>(rng() % 7);
    // Mostly plain pieces (the first 18), as in a real vocabulary.
    for (int i = 0; i < n; ++i) token += pieces[rng() % 5 == 0 ? rng() % pieces.size() : rng() % 18];
    if (seen.insert(token).second) v.push_back(token);
  }
  return v;
}

struct GrammarCase {
  const char* name;
  std::shared_ptr<const Grammar> grammar;
};

std::vector<GrammarCase> StringHeavyGrammars() {
  return {
      {"string maxLength 3", MustCompile(CompileJsonSchema(R"({"type": "string", "maxLength": 3})"))},
      {"string 2..18", MustCompile(CompileJsonSchema(R"({"type": "string", "minLength": 2, "maxLength": 18})"))},
      {"object", MustCompile(CompileJsonSchema(R"({"type": "object", "properties": {
           "a": {"type": "string", "maxLength": 5}, "b": {"type": "array", "items": {"type": "string"}},
           "c": {"type": "integer"}}, "required": ["a"]})"))},
      {"pattern", MustCompile(CompileJsonSchema(R"({"type": "string", "pattern": "^[a-z]+ [^ ]{0,3}$"})"))},
      {"enum", MustCompile(CompileJsonSchema(R"({"enum": ["\u00e9\u6771", "a\"b", 17]})"))},
      {"any JSON", MustCompile(CompileAnyJson())},
      {"regex .{0,20}", MustCompile(CompileRegex(".{0,20}"))},
      {"regex (..)*", MustCompile(CompileRegex("(..)*"))},
      {"regex x.*y", MustCompile(CompileRegex("x.*y"))},
      {"regex [a-z ]*é{2}", MustCompile(CompileRegex("[a-z ]*é{2}"))},
      {"gbnf", MustCompile(CompileGbnf(R"(root ::= "\"" [^"\\]{0,6} "\"" ("," root)?)"))},
  };
}

// Random walks through the mask under test, compared with the reference at every step.
TEST(PlainMaskTest, AgreesWithTokenByTokenReference) {
  const TokenId eos[] = {1};
  for (uint32_t vocab_seed : {1u, 2u}) {
    auto vocab = TokenVocabulary::FromTokenBytes(EdgeVocabulary(vocab_seed), eos);
    ASSERT_TRUE(vocab.has_value());
    const TokenVocabulary& v = **vocab;
    for (const GrammarCase& c : StringHeavyGrammars()) {
      ASSERT_NE(c.grammar, nullptr) << c.name;
      std::mt19937 rng(vocab_seed * 100 + 7);
      for (int walk = 0; walk < 6; ++walk) {
        Matcher m(c.grammar, *vocab);
        std::string prefix;
        std::vector<uint64_t> mask(v.mask_words());
        for (int step = 0; step < 40 && !m.IsTerminated(); ++step) {
          ASSERT_TRUE(m.FillMask(mask).ok());
          const std::vector<uint64_t> want = ReferenceMask(c.grammar, v, prefix);
          ASSERT_EQ(mask, want) << c.name << " after \"" << prefix << "\":" << Differences(mask, want, v);
          std::vector<TokenId> allowed;
          for (size_t id = 0; id < v.size(); ++id) {
            if ((mask[id / 64] >> (id % 64)) & 1) allowed.push_back(static_cast<TokenId>(id));
          }
          if (allowed.empty()) break;
          // Mostly keep going (eos rarely), so walks reach deep counts and nested values.
          TokenId next = allowed[rng() % allowed.size()];
          if (v.IsEos(next) && allowed.size() > 1 && rng() % 4 != 0) next = allowed[(rng() % (allowed.size() - 1)) + 1];
          ASSERT_TRUE(m.Accept(next).ok());
          prefix += v.TokenBytes(next);
        }
      }
    }
  }
}

// Control: the reference tells a count apart. Allowing every plain token inside a string of at
// most 3 characters (ignoring the count) differs from it in exactly the plain tokens of 4 or
// more characters.
TEST(PlainMaskTest, ReferenceCatchesAnIgnoredCharacterCount) {
  const TokenId eos[] = {1};
  auto vocab = TokenVocabulary::FromTokenBytes(EdgeVocabulary(1), eos);
  ASSERT_TRUE(vocab.has_value());
  const TokenVocabulary& v = **vocab;
  auto grammar = MustCompile(CompileJsonSchema(R"({"type": "string", "maxLength": 3})"));
  const std::vector<uint64_t> want = ReferenceMask(grammar, v, "\"");
  std::vector<uint64_t> naive = want;
  size_t long_plain = 0;
  for (size_t id = 0; id < v.size(); ++id) {
    if (PlainCharCount(v.TokenBytes(static_cast<TokenId>(id))) >= 4) {
      naive[id / 64] |= uint64_t{1} << (id % 64);
      ++long_plain;
    }
  }
  ASSERT_GT(long_plain, 0u);
  EXPECT_NE(naive, want);
  Matcher m(grammar, *vocab);
  ASSERT_TRUE(m.AcceptBytes("\"").ok());
  std::vector<uint64_t> mask(v.mask_words());
  ASSERT_TRUE(m.FillMask(mask).ok());
  EXPECT_EQ(mask, want) << Differences(mask, want, v);
}

}  // namespace
}  // namespace kiln::constraint
