// models/brown-gemma4 (the model kiln ships) against transformers. The goldens come from
// scripts/brown_model/train.py, which reloads the saved bf16 checkpoint in fp32 with eager
// attention, the computation kiln's CPU path does:
//   loglik.json      ids and per-token log-likelihoods of passage.txt (a held-out passage longer
//                    than the sliding window)
//   perplexity.json  perplexity of heldout_sample.txt (and of the whole held-out split) under
//                    the definition `kiln perplexity` implements
//   greedy.json      32 greedy tokens (transformers generate, do_sample=False) for 3 prompts
// KILN_BROWN_HELDOUT=/path/heldout.txt (scripts/brown_model/prepare_corpus.py) also checks the
// whole held-out split (a few minutes).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model_loader.h"
#include "tokenizer/model_tokenizer.h"

namespace kiln {
namespace {

using nlohmann::json;

const std::string kModel = KILN_BROWN_MODEL_DIR;
const std::string kGoldens = KILN_BROWN_GOLDENS_DIR;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json ReadJson(const std::string& name) { return json::parse(ReadFile(kGoldens + "/" + name)); }

tokenizer::ModelTokenizer& Tok() {
  static tokenizer::ModelTokenizer* tok = [] {
    auto t = tokenizer::LoadModelTokenizer(kModel);
    if (!t) {
      ADD_FAILURE() << t.error().ToString();
      std::abort();
    }
    return new tokenizer::ModelTokenizer(std::move(*t));
  }();
  return *tok;
}

std::vector<int32_t> Encode(const std::string& text) {
  return Tok().tokenizer.Encode(text, {.add_special_tokens = Tok().add_bos_token, .parse_special = false});
}

LoadedModel& Model() {
  static LoadedModel* model = [] {
    LoadOptions options;
    options.max_tokens = 512;
    options.max_context = 1024;
    auto m = LoadedModel::Load(kModel, options);
    if (!m) {
      ADD_FAILURE() << m.error().ToString();
      std::abort();
    }
    return m->release();
  }();
  return *model;
}

// Log-softmax of one row, in double.
double LogProb(const float* row, int64_t vocab, int32_t target) {
  double max = row[0];
  for (int64_t v = 1; v < vocab; ++v) max = std::max(max, static_cast<double>(row[v]));
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
  return static_cast<double>(row[target]) - max - std::log(sum);
}

int32_t Argmax(const float* row, int64_t vocab) { return static_cast<int32_t>(std::max_element(row, row + vocab) - row); }

TEST(BrownModel, ShipsAsARealCheckpoint) {
  EXPECT_EQ(Model().architecture().family(), "gemma4");
  EXPECT_TRUE(Model().has_weights());
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                        "generation_config.json", "MODEL_CARD.md"}) {
    EXPECT_TRUE(std::ifstream(kModel + "/" + f).good()) << f;
  }
  EXPECT_TRUE(Tok().add_bos_token);
  EXPECT_EQ(Tok().stop_token_ids.front(), 1);  // <eos>
}

TEST(BrownModel, TokenizerMatchesTransformers) {
  const json loglik = ReadJson("loglik.json");
  EXPECT_EQ(Encode(ReadFile(kGoldens + "/passage.txt")), loglik["ids"].get<std::vector<int32_t>>());
  const json ppl = ReadJson("perplexity.json");
  EXPECT_EQ(Encode(ReadFile(kGoldens + "/heldout_sample.txt")), ppl["sample"]["ids"].get<std::vector<int32_t>>());
}

TEST(BrownModel, LogLikelihoodMatchesTransformers) {
  const json golden = ReadJson("loglik.json");
  const auto ids = golden["ids"].get<std::vector<int32_t>>();
  const auto expected = golden["logprobs"].get<std::vector<double>>();
  const auto argmax = golden["argmax"].get<std::vector<int32_t>>();
  ASSERT_GT(ids.size(), 300u);  // longer than the sliding window (128)
  auto session = Model().NewSession();
  ASSERT_TRUE(static_cast<bool>(session)) << session.error().ToString();
  auto logits = session->Prefill(ids, /*all_positions=*/true);
  ASSERT_TRUE(static_cast<bool>(logits)) << logits.error().ToString();
  const int64_t vocab = session->vocab_size();
  double max_diff = 0, sum_kiln = 0, sum_ref = 0;
  size_t same_argmax = 0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const double lp = LogProb(logits->data() + i * vocab, vocab, ids[i + 1]);
    max_diff = std::max(max_diff, std::abs(lp - expected[i]));
    sum_kiln += lp;
    sum_ref += expected[i];
  }
  for (size_t i = 0; i < ids.size(); ++i) same_argmax += Argmax(logits->data() + i * vocab, vocab) == argmax[i];
  std::printf("per-token log-likelihood: max |kiln - transformers| = %.3g over %zu tokens; total %.4f vs %.4f\n",
              max_diff, ids.size() - 1, sum_kiln, sum_ref);
  EXPECT_LT(max_diff, 2e-3);
  EXPECT_NEAR(sum_kiln, sum_ref, 1e-4 * std::abs(sum_ref));
  EXPECT_GE(same_argmax, ids.size() - ids.size() / 100);
}

TEST(BrownModel, GreedyGenerationMatchesTransformers) {
  const json golden = ReadJson("greedy.json");
  const int max_new = golden["max_new_tokens"].get<int>();
  auto session = Model().NewSession();
  ASSERT_TRUE(static_cast<bool>(session)) << session.error().ToString();
  const int64_t vocab = session->vocab_size();
  const auto& stops = Tok().stop_token_ids;
  for (const json& r : golden["results"]) {
    const auto prompt = r["prompt_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(Encode(r["prompt"].get<std::string>()), prompt);
    session->Reset();
    auto logits = session->Prefill(prompt);
    ASSERT_TRUE(static_cast<bool>(logits)) << logits.error().ToString();
    std::vector<int32_t> out;
    while (static_cast<int>(out.size()) < max_new) {
      const int32_t next = Argmax(logits->data(), vocab);
      out.push_back(next);
      if (std::find(stops.begin(), stops.end(), next) != stops.end()) break;
      logits = session->Step(std::vector<int32_t>{next});
      ASSERT_TRUE(static_cast<bool>(logits)) << logits.error().ToString();
    }
    EXPECT_EQ(out, r["ids"].get<std::vector<int32_t>>()) << r["prompt"];
    EXPECT_EQ(Tok().tokenizer.Decode(out, /*skip_special_tokens=*/true), r["text"].get<std::string>());
  }
}

// Runs `kiln perplexity` as a user would; returns the final estimate (or -1).
double KilnPerplexity(const std::string& file, const std::string& extra) {
  const std::string command = std::string(KILN_BINARY) + " perplexity " + kModel + " -f " + file + " " + extra + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return -1;
  std::string output;
  char buf[4096];
  while (size_t got = fread(buf, 1, sizeof buf, pipe)) output.append(buf, got);
  const int status = pclose(pipe);
  EXPECT_EQ(status, 0) << output;
  const size_t at = output.find("Final estimate: PPL = ");
  if (at == std::string::npos) {
    ADD_FAILURE() << output;
    return -1;
  }
  std::printf("%s\n", output.substr(at, output.find('\n', at) - at).c_str());
  return std::strtod(output.c_str() + at + 22, nullptr);
}

double GoldenPpl(const json& split, int ctx, int stride) {
  for (const json& run : split["runs"]) {
    if (run["ctx"] == ctx && run["stride"] == stride) return run["ppl"].get<double>();
  }
  ADD_FAILURE() << "no golden for ctx " << ctx << " stride " << stride;
  return 0;
}

TEST(BrownModel, PerplexityMatchesRecipe) {
  const json golden = ReadJson("perplexity.json");
  const double expected = GoldenPpl(golden["sample"], 512, 512);
  const double ppl = KilnPerplexity(kGoldens + "/heldout_sample.txt", "-c 512");
  EXPECT_NEAR(ppl, expected, 0.01 * expected);
}

TEST(BrownModel, HeldoutSplitPerplexityMatchesRecipe) {
  const char* path = std::getenv("KILN_BROWN_HELDOUT");
  if (!path || !*path) GTEST_SKIP() << "set KILN_BROWN_HELDOUT to the prepared held-out split (heldout.txt)";
  const json golden = ReadJson("perplexity.json");
  const double expected = GoldenPpl(golden["heldout"], 512, 512);
  const double ppl = KilnPerplexity(path, "-c 512");
  EXPECT_NEAR(ppl, expected, 0.01 * expected);
}

}  // namespace
}  // namespace kiln
