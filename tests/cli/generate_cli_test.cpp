// `kiln run`, `kiln chat` and `kiln bench`, run as a user would: exit codes, outputs and
// messages asserted exactly where they are deterministic.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../engine/tiny_text_model.h"
#include "kiln_process.h"

namespace kiln {
namespace {

using testing::CommandResult;
using testing::Kiln;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const std::string kFixtures = KILN_FIXTURES_DIR;
const std::string kGreedyPrompt = "2,37,377,64,34,340,408,291,322,172,338,509,420,441,143,487,317,120,198,109,312,471,376,10";

std::string TextModel() {
  static const testing::TextModelDir dir(
      kFixtures + "/g31b", (std::filesystem::temp_directory_path() / "kiln_cli_text_g31b").string());
  return dir.path();
}

TEST(RunCommand, GreedyTokensEqualTransformers) {
  // g31b's reference.json: greedy_prompt -> greedy_tokens (generate, EOS disabled).
  CommandResult run = Kiln("run " + kFixtures + "/g31b --prompt-tokens " + kGreedyPrompt +
                               " --output-tokens --max-tokens 10 --ignore-eos --ctx 64 --chunk 8",
                           "", /*quiet=*/true);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output, "318 311 318 376 376 376 324 382 278 215\n");
}

TEST(RunCommand, PrintsTheSummary) {
  CommandResult run = Kiln("run " + kFixtures + "/g31b --prompt-tokens " + kGreedyPrompt +
                           " --output-tokens --max-tokens 4 --ctx 64 --top-logprobs 2");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  // Ids on stdout, log-probabilities on stderr: interleaved here, so look for each.
  EXPECT_TRUE(Contains(run.output, "[3] id 376 logprob ")) << run.output;
  EXPECT_TRUE(Contains(run.output, "stop reason  max_tokens after 4 tokens\n")) << run.output;
  EXPECT_TRUE(Contains(run.output, "prompt       24 tokens (0 reused)")) << run.output;
  EXPECT_TRUE(Contains(run.output, "generation   4 tokens")) << run.output;
  EXPECT_TRUE(Contains(run.output, "first token  ")) << run.output;
  EXPECT_TRUE(Contains(run.output, "peak memory  ")) << run.output;
  EXPECT_TRUE(Contains(run.output, "[0] id 318 logprob ")) << run.output;
}

TEST(RunCommand, TextPromptStreamsAndStopsOnAStopString) {
  const std::string model = TextModel();
  // Plain prompt "hi" = <bos> h i (byte tokens); greedy continues 252 252 434 434 252 346 126 219:
  // bytes 0xF8 (never valid UTF-8: U+FFFD), " w434", ..., 'z', a lone lead byte (U+FFFD at the end).
  CommandResult run = Kiln("run " + model + " --prompt hi --no-chat-template --max-tokens 8 --ctx 64", "", true);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(run.output, fffd + fffd + " w434 w434" + fffd + " w346z" + fffd + "\n");
  // Token ids in, text out: g31b's greedy 318 311 ... reads " w318 w311 ..."; "18 w3" spans the
  // first two tokens, so the text stops at " w3".
  CommandResult stopped = Kiln("run " + model + " --prompt-tokens " + kGreedyPrompt +
                               " --max-tokens 10 --ctx 64 --stop '18 w3' --stop unused");
  EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
  EXPECT_EQ(stopped.output.substr(0, 4), " w3\n") << stopped.output;
  EXPECT_TRUE(Contains(stopped.output, "stop reason  stop_string after 2 tokens: 18 w3\n")) << stopped.output;
}

TEST(RunCommand, BadInputsExitNonZeroWithAMessage) {
  const std::string g31b = kFixtures + "/g31b";
  CommandResult too_long = Kiln("run " + g31b + " --prompt-tokens 2,3,4,5,6 --output-tokens --ctx 4");
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_EQ(too_long.output, "kiln run: out of range: the prompt has 5 tokens, more than the context of 4 tokens; "
                             "raise --ctx or shorten the prompt\n");
  CommandResult temperature = Kiln("run " + g31b + " --prompt-tokens 2 --temperature -1");
  EXPECT_EQ(temperature.exit_code, 2);
  EXPECT_EQ(temperature.output, "kiln run: invalid argument: temperature must be >= 0 (0 = greedy), got -1\n");
  CommandResult top_p = Kiln("run " + g31b + " --prompt-tokens 2 --top-p 1.5");
  EXPECT_EQ(top_p.exit_code, 2);
  EXPECT_EQ(top_p.output, "kiln run: invalid argument: top-p must be in (0, 1], got 1.5\n");
  CommandResult top_p_zero = Kiln("run " + g31b + " --prompt-tokens 2 --top-p 0");
  EXPECT_EQ(top_p_zero.output, "kiln run: invalid argument: top-p must be in (0, 1], got 0\n");
  CommandResult unknown = Kiln("run " + g31b + " --prompt-tokens 2 --bogus");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.output, "kiln run: invalid argument: unknown option --bogus\n");
  CommandResult missing = Kiln("run /nonexistent/model --prompt hi");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.output, "kiln run: not found: model path /nonexistent/model does not exist (expected a checkpoint "
                            "directory, a .kiln artifact, a GGUF file or a config.json)\n");
  CommandResult no_tokenizer = Kiln("run " + g31b + " --prompt hello --ctx 64");
  EXPECT_EQ(no_tokenizer.exit_code, 1);
  EXPECT_EQ(no_tokenizer.output, "kiln run: not found: g31b has no tokenizer.json: give the prompt as token ids with "
                                 "--prompt-tokens ID,ID,... and print ids with --output-tokens\n");
  CommandResult no_prompt = Kiln("run " + g31b);
  EXPECT_EQ(no_prompt.exit_code, 2);
  EXPECT_TRUE(Contains(no_prompt.output, "exactly one of --prompt, --prompt-file, --prompt-tokens")) << no_prompt.output;
  CommandResult bad_id = Kiln("run " + g31b + " --prompt-tokens 2,9999 --output-tokens --ctx 64");
  EXPECT_EQ(bad_id.exit_code, 2);
  EXPECT_EQ(bad_id.output, "kiln run: invalid argument: token id 9999 is outside the vocabulary [0, 512)\n");
}

TEST(ChatCommand, TurnsReuseTheCacheAndCommandsWork) {
  // Turn 2's prompt starts with turn 1's, so only the new suffix is prefilled.
  CommandResult run = Kiln("chat " + TextModel() + " --max-tokens 3 --ctx 128 --verbose",
                           "hello\nagain\n/stats\n/reset\n/bogus\nhello\n/exit\n");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(Contains(run.output, "prompt       20 tokens (0 reused)")) << run.output;  // <bos> + 19 byte tokens
  // Turn 2 re-renders turn 1 with the reply, so it reuses at least turn 1's prompt.
  const size_t second = run.output.find("prompt       ", run.output.find("prompt       20 tokens") + 1);
  ASSERT_NE(second, std::string::npos) << run.output;
  const long reused = std::stol(run.output.substr(run.output.find('(', second) + 1));
  EXPECT_GE(reused, 20) << run.output;
  EXPECT_TRUE(Contains(run.output, "(conversation reset)\n")) << run.output;
  EXPECT_TRUE(Contains(run.output, "unknown command /bogus: /reset, /stats, /exit\n")) << run.output;
  // After /reset the cache is dropped: the same first turn is prefilled from scratch again.
  const std::string first_turn = "prompt       20 tokens (0 reused)";
  EXPECT_NE(run.output.find(first_turn), run.output.rfind(first_turn)) << run.output;
  CommandResult no_tokenizer = Kiln("chat " + kFixtures + "/g31b --ctx 64", "hi\n");
  EXPECT_EQ(no_tokenizer.exit_code, 1);
  EXPECT_TRUE(Contains(no_tokenizer.output, "g31b has no tokenizer.json")) << no_tokenizer.output;
}

TEST(RunCommand, PromptFromStandardInputAndThreadsCapped) {
  CommandResult direct = Kiln("run --prompt \"The jury said\" --max-tokens 6 --temperature 0", "", true);
  CommandResult piped = Kiln("run --prompt-file - --max-tokens 6 --temperature 0", "The jury said", true);
  ASSERT_EQ(piped.exit_code, 0) << piped.output;
  EXPECT_EQ(piped.output, direct.output);
  CommandResult directory = Kiln("run --prompt-file " + std::filesystem::temp_directory_path().string() + " --max-tokens 2");
  EXPECT_EQ(directory.exit_code, 2);
  EXPECT_EQ(directory.output, "kiln run: invalid argument: --prompt-file " + std::filesystem::temp_directory_path().string() + " is a directory\n");
  CommandResult threads = Kiln("run --prompt hi --max-tokens 2 --threads 1024");
  EXPECT_EQ(threads.exit_code, 0) << threads.output;
  EXPECT_TRUE(Contains(threads.output, "kiln: --threads 1024 is more than this machine's ")) << threads.output;
}

TEST(RunCommand, LlamaCppShortFlags) {
  const std::string bundled = kFixtures + "/../../models/brown-gemma4";
  CommandResult long_form = Kiln("run " + bundled + " --prompt \"The jury said\" --max-tokens 6 --temperature 0 --ctx 256 --threads 1", "", true);
  ASSERT_EQ(long_form.exit_code, 0) << long_form.output;
  CommandResult short_form = Kiln("run -m " + bundled + " -p \"The jury said\" -n 6 --temperature 0 -c 256 -t 1 -ngl 0", "", true);
  EXPECT_EQ(short_form.exit_code, 0) << short_form.output;
  EXPECT_EQ(short_form.output, long_form.output);
  CommandResult from_file = Kiln("run -m " + bundled + " -f - -n 6 --temperature 0 -c 256", "The jury said", true);
  EXPECT_EQ(from_file.output, long_form.output);
  // -ngl N > 0 asks for the GPU, which this build or machine may not have: it says so.
  CommandResult gpu = Kiln("run -m " + bundled + " -p hi -n 1 -ngl 99");
  if (gpu.exit_code != 0) {
    EXPECT_TRUE(Contains(gpu.output, "kiln run: device unavailable: ")) << gpu.output;
  }
  CommandResult bad = Kiln("run -m " + bundled + " -p hi -ngl all");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.output, "kiln run: invalid argument: -ngl expects a layer count, got 'all'\n");
}

TEST(ChatCommand, AModelWithoutAChatTemplateChatsInPlainText) {
  // The bundled model has no chat template: the README's `kiln chat` must still work.
  CommandResult run = Kiln("chat --max-tokens 4 --temperature 0", "The jury said\nagain\n/exit\n");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(Contains(run.output, "kiln chat: brown-gemma4 has no chat template; the turns are joined as plain text\n")) << run.output;
  CommandResult plain = Kiln("chat --max-tokens 4 --temperature 0 --no-chat-template", "The jury said\nagain\n/exit\n");
  EXPECT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_FALSE(Contains(plain.output, "has no chat template")) << plain.output;
}

TEST(BenchCommand, TableAndJson) {
  const std::string json = (std::filesystem::temp_directory_path() / "kiln_bench.json").string();
  std::filesystem::remove(json);
  CommandResult run = Kiln("bench " + kFixtures + "/g31b -p 16,32 -g 8 -r 3 --seed 1 --chunk 16 --json " + json);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(Contains(run.output, "| test     | reps |   t/s median |          min |          max |\n")) << run.output;
  EXPECT_TRUE(Contains(run.output, "| pp16     |    3 |")) << run.output;
  EXPECT_TRUE(Contains(run.output, "| pp32     |    3 |")) << run.output;
  EXPECT_TRUE(Contains(run.output, "| tg8      |    3 |")) << run.output;
  std::ifstream in(json);
  const auto document = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(document.is_discarded());
  ASSERT_EQ(document["results"].size(), 3u);
  EXPECT_EQ(document["results"][0]["test"], "pp16");
  EXPECT_EQ(document["results"][2]["generated_tokens"], 8);
  EXPECT_EQ(document["results"][1]["tokens_per_second"]["values"].size(), 3u);
  EXPECT_GT(document["results"][1]["tokens_per_second"]["median"].get<double>(), 0.0);
  EXPECT_EQ(document["context"], 32);
  EXPECT_GT(document["peak_memory_bytes"].get<int64_t>(), 0);
  std::filesystem::remove(json);
  CommandResult bad = Kiln("bench " + kFixtures + "/g31b -r 0");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.output, "kiln bench: invalid argument: -r expects an integer in [1, 10000], got '0'\n");
}

// tg tests with speculative decoding (here the g31b fixture's MTP copy drafter): the table adds
// the share of drafts accepted, the JSON the counts; pp tests run without drafts.
TEST(BenchCommand, SpeculativeTgTestsCountTheDrafts) {
  const std::string json = (std::filesystem::temp_directory_path() / "kiln_bench_spec.json").string();
  std::filesystem::remove(json);
  CommandResult run = Kiln("bench " + kFixtures + "/g31b -p 8 -g 24 -r 2 --chunk 16 --draft " + kFixtures +
                           "/g31b/mtp_copy --draft-max 3 --json " + json);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(Contains(run.output, "| test     | reps |   t/s median |          min |          max |   accepted |\n")) << run.output;
  EXPECT_TRUE(Contains(run.output, "| pp8      |    2 |")) << run.output;
  std::ifstream in(json);
  const auto document = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(document.is_discarded());
  ASSERT_EQ(document["results"].size(), 2u);
  EXPECT_EQ(document["results"][0]["draft_tokens"], 0);
  EXPECT_GT(document["results"][1]["draft_tokens"].get<int64_t>(), 0);
  EXPECT_LE(document["results"][1]["accepted_draft_tokens"].get<int64_t>(), document["results"][1]["draft_tokens"].get<int64_t>());
  std::filesystem::remove(json);
  CommandResult bad = Kiln("bench " + kFixtures + "/g31b -g 8 --spec-type draft");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.output, "kiln bench: invalid argument: --spec-type draft needs --draft MODEL\n");
}

}  // namespace
}  // namespace kiln
