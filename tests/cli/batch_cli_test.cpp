// `kiln batch` and `kiln bench --parallel`, run as a user would.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "kiln_process.h"

namespace kiln {
namespace {

using testing::CommandResult;
using testing::Kiln;

const std::string kFixtures = KILN_FIXTURES_DIR;
// g31b's reference.json: greedy_prompt -> greedy_tokens (transformers' generate, EOS disabled).
const std::string kGreedyPrompt = "[2,37,377,64,34,340,408,291,322,172,338,509,420,441,143,487,317,120,198,109,312,471,376,10]";
const std::string kGreedyTokens = "[318,311,318,376,376,376,324,382,278,215]";

std::string WriteLines(const std::string& name, const std::string& lines) {
  const std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path) << lines;
  return path;
}

std::vector<nlohmann::json> JsonLines(const std::string& output) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(BatchCommand, EveryRequestMatchesItsSoloRunInInputOrder) {
  // Five requests, four sequences per step, chunks of 8 tokens: prompts are split and mixed with
  // decode tokens of the others. The first is transformers' greedy reference.
  std::string lines = "{\"prompt_tokens\": " + kGreedyPrompt + ", \"max_tokens\": 10, \"id\": \"ref\"}\n";
  const std::vector<std::string> prompts = {"[2,5,9,300]", "[2,17,300,41,5,6,7,8,9,10,11,12,13]", "[7]", "[2,44,45,46,47,48]"};
  for (size_t i = 0; i < prompts.size(); ++i) {
    lines += "{\"prompt_tokens\": " + prompts[i] + ", \"max_tokens\": " + std::to_string(3 + 2 * i) + ", \"id\": " + std::to_string(i) + "}\n";
  }
  const std::string path = WriteLines("kiln_batch_prompts.jsonl", lines);
  CommandResult batch = Kiln("batch " + kFixtures + "/g31b --prompts " + path + " --parallel 4 --chunk 8 --ctx 64 --ignore-eos", "", true);
  ASSERT_EQ(batch.exit_code, 0) << batch.output;
  const std::vector<nlohmann::json> results = JsonLines(batch.output);
  ASSERT_EQ(results.size(), 5u) << batch.output;
  EXPECT_EQ(results[0]["id"], "ref");
  EXPECT_EQ(results[0]["tokens"].dump(), kGreedyTokens);
  EXPECT_EQ(results[0]["stop_reason"], "max_tokens");
  EXPECT_EQ(results[0]["prompt_tokens"], 24);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const nlohmann::json& result = results[i + 1];
    EXPECT_EQ(result["index"], i + 1);
    EXPECT_EQ(result["id"], i);
    std::string ids = prompts[i].substr(1, prompts[i].size() - 2);
    CommandResult solo = Kiln("run " + kFixtures + "/g31b --prompt-tokens " + ids + " --output-tokens --ignore-eos --ctx 64 --chunk 8 --max-tokens " +
                                  std::to_string(3 + 2 * i), "", true);
    ASSERT_EQ(solo.exit_code, 0) << solo.output;
    std::string joined;
    for (const auto& t : result["tokens"]) {
      if (!joined.empty()) joined += ' ';
      joined += std::to_string(t.get<int>());
    }
    EXPECT_EQ(joined + "\n", solo.output) << "request " << i;
  }
}

// --draft MODEL: a draft model drafts for every request; the outputs are the plain ones.
TEST(BatchCommand, DraftModelGivesThePlainOutputs) {
  std::string lines = "{\"prompt_tokens\": " + kGreedyPrompt + ", \"max_tokens\": 10}\n";
  lines += "{\"prompt_tokens\": [2,17,300,41,5,6,7,8,9,10,11,12,13], \"max_tokens\": 20, \"temperature\": 0.9, \"seed\": 4}\n";
  lines += "{\"prompt_tokens\": [2,44,45,46,47,48], \"max_tokens\": 15}\n";
  const std::string path = WriteLines("kiln_batch_draft.jsonl", lines);
  const std::string common = " --prompts " + path + " --parallel 3 --chunk 8 --ctx 64 --ignore-eos";
  CommandResult plain = Kiln("batch " + kFixtures + "/g31b" + common, "", true);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  for (const std::string draft : {"g31b", "e2b"}) {
    CommandResult drafted = Kiln("batch " + kFixtures + "/g31b" + common + " --draft " + kFixtures + "/" + draft + " --draft-max 3", "", true);
    ASSERT_EQ(drafted.exit_code, 0) << drafted.output;
    const std::vector<nlohmann::json> expected = JsonLines(plain.output), got = JsonLines(drafted.output);
    ASSERT_EQ(got.size(), 3u) << drafted.output;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i]["tokens"], expected[i]["tokens"]) << draft << " request " << i;
    EXPECT_EQ(got[0]["tokens"].dump(), kGreedyTokens);
    ASSERT_TRUE(got[2].contains("draft_tokens")) << got[2].dump();
    EXPECT_GT(got[2]["draft_tokens"].get<int>(), 0);
    if (draft == "g31b") {
      EXPECT_EQ(got[2]["accepted_draft_tokens"], got[2]["draft_tokens"]) << "its own greedy drafts";
    }
    EXPECT_FALSE(expected[2].contains("draft_tokens"));
  }
  // A draft model of another vocabulary is refused before anything runs, naming it.
  CommandResult other = Kiln("batch " + kFixtures + "/g31b" + common + " --draft " + kFixtures + "/../../models/brown-gemma4");
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.output.find("brown-gemma4 has a vocabulary of 8192 tokens, the target's has 512"), std::string::npos) << other.output;
  CommandResult mixed = Kiln("batch " + kFixtures + "/g31b" + common + " --spec-type ngram --draft " + kFixtures + "/e2b");
  EXPECT_EQ(mixed.exit_code, 2);
  EXPECT_EQ(mixed.output, "kiln batch: invalid argument: --draft MODEL drafts with --spec-type draft or mtp, not ngram\n");
}

// --draft ASSISTANT (told from its config) and --spec-type mtp alone (the assistant shipped in
// MODEL/mtp): the MTP assistant drafts for every request; outputs are the plain ones. `kiln run`
// prints the acceptance by draft position.
TEST(BatchCommand, MtpAssistantGivesThePlainOutputs) {
  std::string lines = "{\"prompt_tokens\": " + kGreedyPrompt + ", \"max_tokens\": 30}\n";
  lines += "{\"prompt_tokens\": [2,44,45,46,47,48], \"max_tokens\": 25}\n";
  const std::string path = WriteLines("kiln_batch_mtp.jsonl", lines);
  const std::string common = " --prompts " + path + " --parallel 2 --chunk 8 --ctx 64 --ignore-eos";
  CommandResult plain = Kiln("batch " + kFixtures + "/g31b" + common, "", true);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  // The model with an assistant shipped next to it, in MODEL/mtp.
  const std::filesystem::path shipped = std::filesystem::temp_directory_path() / "kiln_batch_mtp_model";
  std::filesystem::remove_all(shipped);
  std::filesystem::copy(kFixtures + "/g31b", shipped);
  std::filesystem::copy(kFixtures + "/g31b/mtp_copy", shipped / "mtp");
  for (const std::string& model : {kFixtures + "/g31b --draft " + kFixtures + "/g31b/mtp_copy", shipped.string() + " --spec-type mtp"}) {
    CommandResult drafted = Kiln("batch " + model + common + " --draft-max 3", "", true);
    ASSERT_EQ(drafted.exit_code, 0) << drafted.output;
    const std::vector<nlohmann::json> expected = JsonLines(plain.output), got = JsonLines(drafted.output);
    ASSERT_EQ(got.size(), 2u) << drafted.output;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i]["tokens"], expected[i]["tokens"]) << model << " request " << i;
      EXPECT_GT(got[i]["draft_tokens"].get<int>(), 0) << model;
    }
  }
  std::filesystem::remove_all(shipped);
  CommandResult run = Kiln("run " + kFixtures + "/g31b --prompt-tokens " + kGreedyPrompt.substr(1, kGreedyPrompt.size() - 2) +
                           " --output-tokens --max-tokens 40 --temperature 0 --ignore-eos --draft " + kFixtures + "/g31b/mtp_copy --draft-max 3");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("acceptance   by draft position: 1: "), std::string::npos) << run.output;
  // No assistant given and none shipped next to the model.
  CommandResult missing = Kiln("batch " + kFixtures + "/g12b" + common + " --spec-type mtp");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.output, "kiln batch: invalid argument: --spec-type mtp needs --draft ASSISTANT (the model's MTP assistant checkpoint); " +
                                kFixtures + "/g12b ships none in " + kFixtures + "/g12b/mtp\n");
}

TEST(BatchCommand, ABadLineFailsBeforeAnythingRuns) {
  const std::string path = WriteLines("kiln_batch_bad.jsonl", "{\"prompt_tokens\": [2, 5]}\n{\"promt\": \"x\"}\n");
  CommandResult bad = Kiln("batch " + kFixtures + "/g31b --prompts " + path + " --ctx 64");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.output, "kiln batch: invalid argument: --prompts line 2: unknown key 'promt'\n");

  const std::string both = WriteLines("kiln_batch_both.jsonl", "{\"prompt_tokens\": [2], \"prompt\": \"x\"}\n");
  EXPECT_EQ(Kiln("batch " + kFixtures + "/g31b --prompts " + both + " --ctx 64").output,
            "kiln batch: invalid argument: --prompts line 1: give exactly one of prompt, prompt_tokens\n");
  const std::string hot = WriteLines("kiln_batch_hot.jsonl", "{\"prompt_tokens\": [2], \"temperature\": -1}\n");
  CommandResult sampling = Kiln("batch " + kFixtures + "/g31b --prompts " + hot + " --ctx 64");
  EXPECT_EQ(sampling.exit_code, 2);
  EXPECT_NE(sampling.output.find("--prompts line 1: temperature must be >= 0 (0 = greedy), got -1"), std::string::npos) << sampling.output;
  const std::string text = WriteLines("kiln_batch_json.jsonl", "not json\n");
  EXPECT_EQ(Kiln("batch " + kFixtures + "/g31b --prompts " + text + " --ctx 64").output,
            "kiln batch: invalid argument: --prompts line 1: not a JSON object\n");
  CommandResult missing = Kiln("batch " + kFixtures + "/g31b --prompts /nonexistent.jsonl");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.output, "kiln batch: not found: cannot read --prompts /nonexistent.jsonl\n");
  std::string seventy = "5";
  for (int i = 1; i < 70; ++i) seventy += ",5";
  CommandResult long_prompt = Kiln("batch " + kFixtures + "/g31b --prompts " +
                                   WriteLines("kiln_batch_long.jsonl", "{\"prompt_tokens\": [" + seventy + "]}\n") + " --ctx 64");
  EXPECT_EQ(long_prompt.exit_code, 2);
  EXPECT_EQ(long_prompt.output, "kiln batch: invalid argument: --prompts line 1: the prompt has 70 tokens, more than the context of 64 tokens; "
                                "raise --ctx or shorten the prompt\n");
}

TEST(BenchCommand, ParallelReportsEveryBatchSize) {
  const std::string json = (std::filesystem::temp_directory_path() / "kiln_bench_parallel.json").string();
  CommandResult bench = Kiln("bench " + kFixtures + "/g31b --parallel 1,3 -p 10 -g 4 -r 1 --chunk 8 --json " + json, "", true);
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_NE(bench.output.find("| parallel |     pp t/s |  ttft median |   tg t/s total | tg t/s per seq |"), std::string::npos) << bench.output;
  std::ifstream in(json);
  const nlohmann::json document = nlohmann::json::parse(in);
  ASSERT_EQ(document["results"].size(), 2u);
  EXPECT_EQ(document["results"][0]["parallel"], 1);
  EXPECT_EQ(document["results"][1]["parallel"], 3);
  EXPECT_GT(document["results"][1]["generation_tokens_per_second"].get<double>(), 0.0);

  CommandResult bad = Kiln("bench " + kFixtures + "/g31b --parallel 1,x");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.output, "kiln bench: invalid argument: --parallel expects a list of sequence counts, got '1,x'\n");
}

}  // namespace
}  // namespace kiln
