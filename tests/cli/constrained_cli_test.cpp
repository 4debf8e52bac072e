// Structured output through `kiln run` and `kiln batch` on the bundled model (its real BPE
// tokenizer): every output satisfies its regex / schema, the scheduler's per-request masks give
// what a solo run gives, and malformed constraints are refused before anything loads.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "kiln_process.h"

namespace kiln {
namespace {

using testing::CommandResult;
using testing::Kiln;

const std::string kFixtures = KILN_FIXTURES_DIR;
const std::string kSchema =
    R"('{"type":"object","properties":{"verdict":{"enum":["guilty","not guilty"]},"count":{"type":"integer","minimum":0,"maximum":12}},"required":["verdict","count"]}')";

std::string Trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \n"), end = text.find_last_not_of(" \n");
  return begin == std::string::npos ? "" : text.substr(begin, end - begin + 1);
}

TEST(ConstrainedOutput, ARegexHoldsForEverySeed) {
  for (int seed = 0; seed < 6; ++seed) {
    CommandResult run = Kiln("run --prompt \"The jury said\" --regex \"(yes|no|maybe later)\" --temperature 1.2 --max-tokens 20 --seed " +
                                 std::to_string(seed), "", /*quiet=*/true);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const std::string text = run.output.substr(0, run.output.size() - 1);  // the final newline
    EXPECT_TRUE(text == "yes" || text == "no" || text == "maybe later") << "seed " << seed << ": '" << text << "'";
  }
}

TEST(ConstrainedOutput, AJsonSchemaHolds) {
  CommandResult run = Kiln("run --prompt \"The verdict\" --temperature 0 --max-tokens 200 --json-schema " + kSchema, "", true);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json parsed = nlohmann::json::parse(Trim(run.output), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(parsed.is_object()) << run.output;
  ASSERT_TRUE(parsed.contains("verdict") && parsed.contains("count")) << run.output;
  EXPECT_TRUE(parsed["verdict"] == "guilty" || parsed["verdict"] == "not guilty") << run.output;
  ASSERT_TRUE(parsed["count"].is_number_integer()) << run.output;
  EXPECT_GE(parsed["count"].get<int>(), 0);
  EXPECT_LE(parsed["count"].get<int>(), 12);
  EXPECT_EQ(parsed.size(), 2u);
}

TEST(ConstrainedOutput, TheSchedulerMasksEachRequestLikeASoloRun) {
  const std::string path = (std::filesystem::temp_directory_path() / "kiln_constrained.jsonl").string();
  std::ofstream(path) << "{\"prompt\": \"The jury said\", \"max_tokens\": 12, \"regex\": \"[a-z]+( [a-z]+)?\\\\.\"}\n"
                      << "{\"prompt\": \"The jury said\", \"max_tokens\": 12}\n"
                      << "{\"prompt\": \"The city of\", \"max_tokens\": 12, \"regex\": \"(north|south|east|west)ern\"}\n";
  CommandResult batch = Kiln("batch --prompts " + path + " --temperature 0 --parallel 3", "", true);
  ASSERT_EQ(batch.exit_code, 0) << batch.output;
  std::istringstream lines(batch.output);
  std::vector<nlohmann::json> results;
  for (std::string line; std::getline(lines, line);) results.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(std::regex_match(results[0]["text"].get<std::string>(), std::regex("[a-z]+( [a-z]+)?\\."))) << results[0];
  EXPECT_TRUE(std::regex_match(results[2]["text"].get<std::string>(), std::regex("(north|south|east|west)ern"))) << results[2];
  EXPECT_EQ(results[2]["stop_reason"], "eos");
  // The same requests alone through `kiln run`.
  CommandResult first = Kiln("run --prompt \"The jury said\" --max-tokens 12 --temperature 0 --regex \"[a-z]+( [a-z]+)?\\.\"", "", true);
  EXPECT_EQ(first.output, results[0]["text"].get<std::string>() + "\n");
  CommandResult plain = Kiln("run --prompt \"The jury said\" --max-tokens 12 --temperature 0", "", true);
  EXPECT_EQ(plain.output, results[1]["text"].get<std::string>() + "\n");
}

TEST(ConstrainedOutput, MalformedConstraintsAreRefusedBeforeLoading) {
  CommandResult regex = Kiln("run --prompt x --regex \"(yes|no\"");
  EXPECT_EQ(regex.exit_code, 2);
  EXPECT_EQ(regex.output, "kiln run: invalid argument: regex: regex error at 1:1: unterminated group: expected ')'\n");
  CommandResult keyword = Kiln("run --prompt x --json-schema '{\"type\":\"object\",\"patternProperties\":{}}'");
  EXPECT_EQ(keyword.exit_code, 2);
  EXPECT_EQ(keyword.output, "kiln run: invalid argument: json schema: unsupported JSON Schema keyword 'patternProperties' at /\n");
  CommandResult two = Kiln("run --prompt x --json --regex a");
  EXPECT_EQ(two.output, "kiln run: invalid argument: give at most one of a JSON schema, a regex, a grammar and JSON mode\n");
  CommandResult missing = Kiln("run --prompt x --grammar /nonexistent.gbnf");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.output, "kiln run: not found: cannot read --grammar /nonexistent.gbnf\n");
  // Token-id models have no vocabulary to match against.
  CommandResult ids = Kiln("run " + kFixtures + "/g31b --prompt-tokens 2,5 --output-tokens --ctx 64 --regex a");
  EXPECT_NE(ids.exit_code, 0);
  EXPECT_NE(ids.output.find("has no tokenizer.json"), std::string::npos) << ids.output;
}

}  // namespace
}  // namespace kiln
