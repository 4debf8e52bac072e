// Token masks on a small handmade vocabulary: exact allowed sets with multi-symbol tokens,
// byte-fallback tokens that split a UTF-8 character, special and empty tokens, eos, rollback.
#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "constraint/matcher.h"
#include "test_util.h"

namespace kiln::constraint {
namespace {

using testing::MustCompile;

// id: bytes
std::vector<std::optional<std::string>> HandmadeVocabulary() {
  return {
      std::nullopt,   // 0 <pad>: special, never allowed
      std::nullopt,   // 1 <eos>
      "a",            // 2
      "ab",           // 3  two grammar symbols
      "abc",          // 4  a whole sentence
      "b",            // 5
      "c",            // 6
      "\xC3",         // 7  <0xC3>: first byte of é
      "\xA9",         // 8  <0xA9>: last byte of é
      "\xC3\xA9",     // 9  é
      "b\xC3\xA9",    // 10 bé
      "ca",           // 11 runs past the end of the grammar
      "x",            // 12
      "",             // 13 decodes to nothing
      "\xC3\xA9" "c", // 14 éc
  };
}

std::set<TokenId> Allowed(Matcher& matcher) {
  std::vector<uint64_t> mask(matcher.vocabulary().mask_words());
  EXPECT_TRUE(matcher.FillMask(mask).ok());
  std::set<TokenId> ids;
  for (size_t id = 0; id < matcher.vocabulary().size(); ++id) {
    if ((mask[id / 64] >> (id % 64)) & 1) ids.insert(static_cast<TokenId>(id));
  }
  return ids;
}

class MatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const TokenId eos[] = {1};
    auto vocab = TokenVocabulary::FromTokenBytes(HandmadeVocabulary(), eos);
    ASSERT_TRUE(vocab.has_value());
    vocab_ = *vocab;
    grammar_ = MustCompile(CompileRegex("a(b|é)*c"));
  }
  std::shared_ptr<const TokenVocabulary> vocab_;
  std::shared_ptr<const Grammar> grammar_;
};

TEST_F(MatcherTest, ExactAllowedSets) {
  Matcher m(grammar_, vocab_);
  EXPECT_EQ(Allowed(m), (std::set<TokenId>{2, 3, 4}));  // must start with a; eos not yet
  ASSERT_TRUE(m.Accept(2).ok());
  // b, c, é, bé, éc, and the lone first byte of é; never the lone continuation byte, "ca" (past
  // the end), the empty token, the special token or eos.
  const std::set<TokenId> after_a = {5, 6, 7, 9, 10, 14};
  EXPECT_EQ(Allowed(m), after_a);
  ASSERT_TRUE(m.Accept(7).ok());  // half of é
  EXPECT_EQ(Allowed(m), (std::set<TokenId>{8}));
  EXPECT_FALSE(m.IsAccepting());
  ASSERT_TRUE(m.Accept(8).ok());
  EXPECT_EQ(Allowed(m), after_a);
  ASSERT_TRUE(m.Accept(6).ok());
  EXPECT_TRUE(m.IsAccepting());
  EXPECT_TRUE(m.MustEnd());
  EXPECT_EQ(Allowed(m), (std::set<TokenId>{1}));  // only end of sequence
  ASSERT_TRUE(m.Accept(1).ok());
  EXPECT_TRUE(m.IsTerminated());
  EXPECT_TRUE(Allowed(m).empty());
  EXPECT_FALSE(m.Accept(2).ok());
}

TEST_F(MatcherTest, RefusedTokensLeaveTheStateAlone) {
  Matcher m(grammar_, vocab_);
  EXPECT_FALSE(m.Accept(5).ok());   // b first
  EXPECT_FALSE(m.Accept(1).ok());   // eos on an incomplete output
  EXPECT_FALSE(m.Accept(0).ok());   // special
  EXPECT_FALSE(m.Accept(13).ok());  // empty
  const Status bad = m.Accept(8);
  EXPECT_NE(bad.ToString().find("not allowed here"), std::string::npos) << bad.ToString();
  EXPECT_EQ(m.num_accepted_tokens(), 0u);
  EXPECT_EQ(Allowed(m), (std::set<TokenId>{2, 3, 4}));
  std::vector<uint64_t> wrong_size(1);
  EXPECT_FALSE(m.FillMask(std::span<uint64_t>(wrong_size.data(), 0)).ok());
}

TEST_F(MatcherTest, RollbackRestoresEarlierStates) {
  Matcher m(grammar_, vocab_);
  ASSERT_TRUE(m.Accept(3).ok());   // ab
  ASSERT_TRUE(m.Accept(10).ok());  // bé
  ASSERT_TRUE(m.Accept(6).ok());   // c
  ASSERT_TRUE(m.Accept(1).ok());   // eos
  EXPECT_FALSE(m.Rollback(5).ok());
  ASSERT_TRUE(m.Rollback(3).ok());  // back to after "ab"
  EXPECT_FALSE(m.IsTerminated());
  EXPECT_EQ(Allowed(m), (std::set<TokenId>{5, 6, 7, 9, 10, 14}));
  ASSERT_TRUE(m.Rollback(1).ok());
  EXPECT_EQ(Allowed(m), (std::set<TokenId>{2, 3, 4}));
  ASSERT_TRUE(m.Accept(4).ok());
  EXPECT_EQ(Allowed(m), (std::set<TokenId>{1}));
}

TEST_F(MatcherTest, EosIdsOutsideTheVocabularyAreRefused) {
  const TokenId eos[] = {99};
  EXPECT_FALSE(TokenVocabulary::FromTokenBytes(HandmadeVocabulary(), eos).has_value());
}

// The mask agrees with a brute-force check of every token against the grammar: token t is
// allowed iff prefix + bytes(t) can still be completed, here decided by trying every completion
// of at most 3 more pieces of the grammar's alphabet.
TEST_F(MatcherTest, MaskAgreesWithBruteForce) {
  auto grammar = MustCompile(CompileGbnf(R"(root ::= ("ab" | "é")+ "c"{1,2})"));
  // Bytes, not characters: a completion may finish a character a token started.
  const std::vector<std::string> alphabet = {"a", "b", "c", "\xC3\xA9", "\xA9"};
  auto viable = [&](const std::string& text) {
    std::vector<std::string> frontier = {text};
    for (int depth = 0; depth <= 3; ++depth) {
      std::vector<std::string> next;
      for (const std::string& s : frontier) {
        if (GrammarMatches(*grammar, s)) return true;
        for (const std::string& c : alphabet) next.push_back(s + c);
      }
      frontier = std::move(next);
    }
    return false;
  };
  const std::vector<std::string> walk = {"", "a", "ab", "ab\xC3\xA9", "ab\xC3\xA9" "c", "ab\xC3\xA9" "cc"};
  auto vocab_bytes = HandmadeVocabulary();
  for (const std::string& prefix : walk) {
    Matcher m(grammar, vocab_);
    ASSERT_TRUE(m.AcceptBytes(prefix).ok()) << prefix;
    std::set<TokenId> expected;
    for (size_t id = 0; id < vocab_bytes.size(); ++id) {
      if (vocab_bytes[id] && !vocab_bytes[id]->empty() && viable(prefix + *vocab_bytes[id])) {
        expected.insert(static_cast<TokenId>(id));
      }
    }
    if (GrammarMatches(*grammar, prefix)) expected.insert(1);
    EXPECT_EQ(Allowed(m), expected) << "after \"" << prefix << "\"";
  }
}

}  // namespace
}  // namespace kiln::constraint
