// kiln --quant as a user runs it: the flag's errors, inspect's report, compile and run of a
// quantized artifact, and the bundled model's perplexity under every recipe against bf16 — a
// bound a packing or kernel bug would break.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <vector>

#include "kiln_process.h"

namespace kiln {
namespace {

using testing::Kiln;
namespace fs = std::filesystem;

const std::string kBrownModel = KILN_BROWN_MODEL_DIR;
const std::string kHeldoutSample = std::string(KILN_BROWN_GOLDENS_DIR) + "/heldout_sample.txt";

TEST(QuantCliTest, AnUnknownRecipeListsTheValidOnes) {
  // Each command with the flags it needs to reach the model options.
  const std::vector<std::string> commands = {"run MODEL --prompt x", "chat MODEL", "inspect MODEL", "perplexity MODEL -f " + kHeldoutSample,
                                             "compile MODEL -o /dev/null", "logits MODEL --tokens 2,3 --out /dev/null", "bench MODEL",
                                             "batch MODEL --prompts /dev/null", "serve MODEL --port 0"};
  for (const std::string& command : commands) {
    std::string line = command;
    line.replace(line.find("MODEL"), 5, kBrownModel);
    const auto result = Kiln(line + " --quant q5_k_m");
    EXPECT_EQ(result.exit_code, 2) << command << ": " << result.output;
    EXPECT_NE(result.output.find("--quant expects one of q8_0, q4_0, q4_k_m, q6_k, fp8, got 'q5_k_m'"), std::string::npos)
        << command << ": " << result.output;
  }
}

TEST(QuantCliTest, InspectReportsWhatTheRecipeChose) {
  const auto plain = Kiln("inspect " + kBrownModel);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_NE(plain.output.find("quant     none (weights as the source stores them)"), std::string::npos) << plain.output;
  const auto quantized = Kiln("inspect " + kBrownModel + " --quant q4_k_m");
  ASSERT_EQ(quantized.exit_code, 0) << quantized.output;
  EXPECT_NE(quantized.output.find("quant     q4_k_m: "), std::string::npos) << quantized.output;
  // 384-element rows: the embedding's q6_k falls back to q8_0, most matrices' q4_k to q5_0 (as
  // llama-quantize does); the full layers' o_proj (rows of 768) stays q4_k.
  for (const char* line : {"token embedding  q8_0", "matrices         q5_0", "matrices         q4_k", "ffn down         q8_0",
                           "kept             bf16"}) {
    EXPECT_NE(quantized.output.find(line), std::string::npos) << line << "\n" << quantized.output;
  }
}

TEST(QuantCliTest, CompileRecordsTheRecipeAndTheArtifactRefusesAnother) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_quant_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string out = (dir / "brown-q8.kiln").string();
  const auto compiled = Kiln("compile " + kBrownModel + " --quant q8_0 --ctx 256 -o " + out);
  ASSERT_EQ(compiled.exit_code, 0) << compiled.output;
  EXPECT_NE(compiled.output.find(", weights q8_0 in "), std::string::npos) << compiled.output;
  const auto inspected = Kiln("inspect " + out);
  ASSERT_EQ(inspected.exit_code, 0) << inspected.output;
  EXPECT_NE(inspected.output.find("artifact  format 4"), std::string::npos) << inspected.output;
  EXPECT_NE(inspected.output.find("quant     q8_0: "), std::string::npos) << inspected.output;
  const auto ran = Kiln("run " + out + " --prompt 'The jury said' --max-tokens 4 --temperature 0");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  const auto again = Kiln("run " + out + " --quant q4_0 --prompt x --max-tokens 1");
  EXPECT_EQ(again.exit_code, 2) << again.output;
  EXPECT_NE(again.output.find("--quant q4_0 applies to checkpoints, but " + out +
                              " is a compiled .kiln artifact (weights quantized with q8_0)"),
            std::string::npos)
      << again.output;
  fs::remove_all(dir);
}

TEST(QuantCliTest, AnAlreadyQuantizedGgufIsNotRequantized) {
  const std::string gguf = kBrownModel + "/../../tests/fixtures/gguf/g31b.q8_0.gguf";
  const auto result = Kiln("inspect " + gguf + " --quant q4_0");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("is already stored as q8_0; kiln does not requantize quantized weights"), std::string::npos) << result.output;
  const auto plain = Kiln("inspect " + gguf);
  EXPECT_EQ(plain.exit_code, 0) << plain.output;
}

TEST(QuantCliTest, InspectSaysWhereJitPackedWeightsLive) {
  const auto result = Kiln("inspect " + kBrownModel + " --quant q8_0");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("read in place from the mapped file but for "), std::string::npos) << result.output;
}

double Perplexity(const std::string& extra) {
  const auto result = Kiln("perplexity " + kBrownModel + " -f " + kHeldoutSample + " -c 512 " + extra, "", /*quiet=*/true);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  const size_t at = result.output.find("Final estimate: PPL = ");
  if (at == std::string::npos) {
    ADD_FAILURE() << result.output;
    return NAN;
  }
  return std::strtod(result.output.c_str() + at + 22, nullptr);
}

// The bundled model on the first 8 chunks of 512 tokens of tests/brown_model/heldout_sample.txt
// (the second half of each scored). This small model is insensitive to weight noise: measured
// over all 17 chunks, every recipe is within 0.4 % of bf16 (docs/quantization.md). The bounds
// leave room over that — 8-bit and 6-bit formats within 0.5 %, 4-bit within 2 % — and a wrong
// nibble order, scale or block stride gives perplexities in the thousands. A recipe must also
// change the result: a perplexity equal to bf16's means nothing was quantized.
TEST(QuantCliTest, PerplexityOfEveryRecipeStaysNearBf16) {
  const double bf16 = Perplexity("--chunks 8");
  ASSERT_GT(bf16, 100.0);  // about 234 over all chunks (tests/brown_model/perplexity.json)
  const std::map<std::string, double> bounds = {{"q8_0", 0.005}, {"fp8", 0.005}, {"q6_k", 0.005}, {"q4_k_m", 0.02}, {"q4_0", 0.02}};
  for (const auto& [recipe, bound] : bounds) {
    const double ppl = Perplexity("--chunks 8 --quant " + recipe);
    std::printf("perplexity %-7s %.4f (bf16 %.4f, ratio %.5f)\n", recipe.c_str(), ppl, bf16, ppl / bf16);
    EXPECT_LT(std::fabs(ppl / bf16 - 1.0), bound) << recipe;
    EXPECT_NE(ppl, bf16) << recipe << ": the recipe changed no weight";
  }
}

}  // namespace
}  // namespace kiln
