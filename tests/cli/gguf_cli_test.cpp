// `kiln run`, `kiln inspect`, `kiln logits` and `kiln chat` on GGUF files made by llama.cpp's
// converter (tests/fixtures/gguf), run as a user would.
#include <gtest/gtest.h>

#include <string>

#include "kiln_process.h"

namespace kiln {
namespace {

using testing::CommandResult;
using testing::Kiln;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const std::string kFixtures = KILN_FIXTURES_DIR;
// g31b's reference.json: greedy_prompt -> greedy_tokens (transformers' generate, EOS disabled).
const std::string kGreedyPrompt = "2,37,377,64,34,340,408,291,322,172,338,509,420,441,143,487,317,120,198,109,312,471,376,10";
const std::string kGreedyTokens = "318 311 318 376 376 376 324 382 278 215\n";

TEST(GgufCli, RunGivesTheCheckpointsGreedyTokens) {
  for (const std::string file : {"g31b.f32.gguf", "g31b-f16-split-00001-of-00003.gguf"}) {
    CommandResult run = Kiln("run " + kFixtures + "/gguf/" + file + " --prompt-tokens " + kGreedyPrompt +
                                 " --output-tokens --max-tokens 10 --ignore-eos --ctx 64 --chunk 8",
                             "", /*quiet=*/true);
    EXPECT_EQ(run.exit_code, 0) << file << ": " << run.output;
    EXPECT_EQ(run.output, kGreedyTokens) << file;
  }
}

TEST(GgufCli, InspectPrintsTheModelFromTheMetadata) {
  CommandResult run = Kiln("inspect " + kFixtures + "/gguf/e2b.f32.gguf --ctx 64");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(Contains(run.output, "e2b.f32.gguf")) << run.output;
  EXPECT_TRUE(Contains(run.output, "10 layers (8 sliding, 2 full, 5 KV-shared), hidden 48, vocab 512")) << run.output;
  EXPECT_TRUE(Contains(run.output, "per-layer embeddings 8")) << run.output;
  EXPECT_TRUE(Contains(run.output, "read in place from the mapped file")) << run.output;
}

TEST(GgufCli, TextPromptsUseTheEmbeddedTokenizer) {
  CommandResult run = Kiln("run " + kFixtures + "/gguf/g31b.f32.gguf --prompt hello --max-tokens 3 --ctx 64 --no-chat-template", "",
                           /*quiet=*/true);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  CommandResult chat = Kiln("run " + kFixtures + "/gguf/g31b.f32.gguf --prompt hello --max-tokens 3 --ctx 64 --output-tokens", "",
                            /*quiet=*/true);
  EXPECT_EQ(chat.exit_code, 0) << chat.output;
}

TEST(GgufCli, ABrokenFileIsAClearError) {
  CommandResult run = Kiln("run " + kFixtures + "/gguf/g31b-f16-split-00002-of-00003.gguf --prompt-tokens 2,3 --ctx 64");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_TRUE(Contains(run.output, "open the first shard")) << run.output;
}

}  // namespace
}  // namespace kiln
