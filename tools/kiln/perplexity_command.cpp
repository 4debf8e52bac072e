// kiln perplexity MODEL --file F [-c N] [--stride N] [--chunks N]
//
// Perplexity of a text file, computed the way llama.cpp's llama-perplexity does:
//   ids = encode(file text) with the model's <bos>-style prefix (special-token strings in the
//   file are plain text). Chunks of `ctx` tokens start at 0, stride, 2*stride, ... (whole chunks
//   only). The first token of every chunk is replaced by <bos> when the model adds one. With
//   first = ctx - min(stride, ctx / 2), the logits at positions j in [first, ctx - 1) score token
//   j + 1 (log-softmax in double). PPL = exp(mean negative log-likelihood of all scored tokens).
// With the default stride (= ctx) this is llama.cpp's definition: non-overlapping chunks, the
// second half of each scored. A smaller stride gives overlapping windows whose last `stride`
// positions are scored, so every scored token sees at least ctx - stride tokens of context.
// scripts/brown_model/train.py implements the same definition for transformers.
//
// Output (stdout), as llama-perplexity prints it: the running estimate after every chunk,
// "[1]12.3456,[2]11.9876,...", then "Final estimate: PPL = X +/- E" where E is the standard
// error propagated from the per-token negative log-likelihoods.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <span>
#include <sstream>
#include <vector>

#include "cli_args.h"
#include "commands.h"
#include "engine/model_loader.h"
#include "model_options.h"
#include "tokenizer/model_tokenizer.h"
#include "tokenizer_source.h"

namespace kiln::cli {

namespace {

const char kUsage[] =
    "usage: kiln perplexity MODEL -f FILE [-c N] [--stride N] [--chunks N] [--tokenizer DIR]\n"
    "                       [--threads N] [--chunk N] [--num-layers N] [--quant q8_0|q4_0|q4_k_m|q6_k|fp8]\n"
    "  MODEL               checkpoint directory (or a .kiln artifact with --tokenizer DIR)\n"
    "  -f, --file FILE     text to score\n"
    "  -c, --ctx-size N    tokens per chunk (default 512)\n"
    "  --stride N          tokens between chunk starts, 1..ctx (default ctx: llama.cpp's\n"
    "                      non-overlapping chunks, second half of each scored)\n"
    "  --chunks N          score at most N chunks (default all)\n"
    "  --tokenizer DIR     where tokenizer.json is (default MODEL)\n"
    "Every chunk starts with <bos>; the tokens at positions ctx - min(stride, ctx/2) + 1 .. ctx - 1\n"
    "of each chunk are scored. Prints the running estimate per chunk and the final\n"
    "\"Final estimate: PPL = X +/- E\".\n";

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

}  // namespace

int RunPerplexity(int argc, char** argv) {
  const char* kName = "perplexity";
  std::set<std::string> value_flags = kModelValueFlags;
  value_flags.insert({"-f", "--file", "-c", "--ctx-size", "--stride", "--chunks", "--tokenizer"});
  std::set<std::string> switches = kModelSwitches;
  switches.insert({"--help", "-h"});
  auto args = Args::Parse(argc, argv, value_flags, switches);
  if (!args) return ReportError(kName, args.error());
  if (args->Has("--help") || args->Has("-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string file = args->Has("--file") ? args->Get("--file") : args->Get("-f");
  if (args->positionals().size() != 1 || file.empty()) {
    std::fprintf(stderr, "kiln perplexity: expected MODEL and --file\n%s", kUsage);
    return 2;
  }
  const std::string model_path = args->positionals()[0];
  auto ctx = args->GetInt(args->Has("--ctx-size") ? "--ctx-size" : "-c", 512, 4, int64_t{1} << 20);
  if (!ctx) return ReportError(kName, ctx.error());
  auto stride = args->GetInt("--stride", *ctx, 1, *ctx);
  if (!stride) return ReportError(kName, stride.error());
  auto max_chunks = args->GetInt("--chunks", -1, -1, int64_t{1} << 30);
  if (!max_chunks) return ReportError(kName, max_chunks.error());

  // Text and tokens.
  std::ifstream in(file, std::ios::binary);
  if (!in) return ReportError(kName, Invalid("cannot read " + file));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  auto tok = LoadTokenizerOf(args->Get("--tokenizer", model_path));
  if (!tok) return ReportError(kName, tok.error());
  const auto t_tok = std::chrono::steady_clock::now();
  const std::vector<tokenizer::TokenId> ids =
      tok->tokenizer.Encode(text, {.add_special_tokens = tok->add_bos_token, .parse_special = false});
  const double tok_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_tok).count();
  std::vector<tokenizer::TokenId> prefix = tok->tokenizer.Encode("", {.add_special_tokens = true});
  const bool replace_bos = tok->add_bos_token && !prefix.empty();
  const int32_t bos = replace_bos ? prefix[0] : 0;

  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t c = *ctx;
  if (n < c) {
    return ReportError(kName, Invalid(file + " has " + std::to_string(n) + " tokens, fewer than one chunk of " +
                                      std::to_string(c) + " (use a smaller -c)"));
  }
  int64_t chunks = (n - c) / *stride + 1;
  if (*max_chunks >= 0) chunks = std::min(chunks, *max_chunks);
  const int64_t first = c - std::min(*stride, c / 2);

  // Model.
  auto options = ModelOptionsFromArgs(*args, c);
  if (!options) return ReportError(kName, options.error());
  if (options->max_context < c) return ReportError(kName, Invalid("--ctx is smaller than the chunk size -c"));
  options->required_context = std::max(options->required_context, c);
  auto model = LoadedModel::Load(model_path, *options);
  if (!model) return ReportError(kName, model.error());
  auto session = (*model)->NewSession(options->num_threads);
  if (!session) return ReportError(kName, session.error());
  const int64_t vocab = session->vocab_size();

  std::fprintf(stderr, "perplexity: %s: %lld tokens (tokenized in %.1f ms)\n", file.c_str(),
               static_cast<long long>(n), tok_ms);
  std::fprintf(stderr,
               "perplexity: calculating perplexity over %lld chunks, n_ctx=%lld, stride=%lld, scoring %lld tokens "
               "per chunk\n",
               static_cast<long long>(chunks), static_cast<long long>(c), static_cast<long long>(*stride),
               static_cast<long long>(c - 1 - first));

  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<int32_t> chunk(c);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t start = k * *stride;
    std::copy(ids.begin() + start, ids.begin() + start + c, chunk.begin());
    if (replace_bos) chunk[0] = bos;
    session->Reset();
    // The context before `first` needs no logits; the scored rows are positions first..c-2.
    std::span<const int32_t> all(chunk);
    if (first > 0) {
      auto head = session->Prefill(all.first(first), /*all_positions=*/false);
      if (!head) return ReportError(kName, head.error());
    }
    auto logits = session->Prefill(all.subspan(first), /*all_positions=*/true);
    if (!logits) return ReportError(kName, logits.error());
    for (int64_t j = first; j < c - 1; ++j) {
      const float* row = logits->data() + (j - first) * vocab;
      const int32_t target = chunk[j + 1];
      if (target < 0 || target >= vocab) {
        return ReportError(kName, Error(ErrorCode::kInvalidArgument,
                                        "token id " + std::to_string(target) + " is outside the model's vocabulary"));
      }
      double max = row[0];
      for (int64_t v = 1; v < vocab; ++v) max = std::max(max, static_cast<double>(row[v]));
      double sum = 0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
      const double loss = -(static_cast<double>(row[target]) - max - std::log(sum));
      nll += loss;
      nll2 += loss * loss;
      ++count;
    }
    if (k == 0) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "perplexity: %.2f seconds per pass - ETA %.2f minutes\n", s, s * chunks / 60.0);
    }
    std::printf("[%lld]%.4f,", static_cast<long long>(k + 1), std::exp(nll / count));
    std::fflush(stdout);
  }
  const double mean = nll / count;
  double var = nll2 / count - mean * mean;
  const double err = var > 0 && count > 1 ? std::sqrt(var / (count - 1)) : 0.0;
  const double ppl = std::exp(mean);
  std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, err * ppl);
  std::fprintf(stderr, "perplexity: %lld tokens scored, mean NLL %.6f, %.1f s\n", static_cast<long long>(count), mean,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

}  // namespace kiln::cli
