// Constrained decoding cost: schema compile time and allowed-token mask time per decoding step
// on a 262,144-token vocabulary.
//
//   constraint_bench [--documents N] [--vocab PATH.gguf]
//
// Vocabulary: the real Gemma 4 vocabulary from the asset cache (scripts/fetch-tokenizer-assets.sh)
// when present, else a synthetic 262,144-token BPE-like vocabulary (printed either way).
// For each case a valid document is tokenized (by the real tokenizer, or greedy longest match on
// the synthetic one) and replayed through a fresh Matcher: FillMask before every token, then
// Accept. Each document is a new request (new Matcher, cold caches), as in serving. Reported:
// compile ms, then mask microseconds per step over all steps of all documents: median, p99, max,
// and the first step of a request (the cold start).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "constraint/constraint.h"
#include "constraint/matcher.h"
#include "tokenizer/model_tokenizer.h"
#include "tool_call_schema.h"

namespace {

using namespace kiln::constraint;
using Clock = std::chrono::steady_clock;

double Microseconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

// Words, subwords, punctuation runs and JSON fragments; byte tokens for every byte.
std::vector<std::optional<std::string>> SyntheticVocabulary(size_t size) {
  std::vector<std::optional<std::string>> v = {std::nullopt, std::nullopt};  // <pad>, <eos>
  for (int b = 0; b < 256; ++b) v.push_back(std::string(1, static_cast<char>(b)));
  std::mt19937 rng(7);
  const std::string letters = "etaoinshrdlcumwfgypbvkjxqz";
  std::geometric_distribution<int> length(0.25);
  std::unordered_map<std::string, bool> seen;
  const char* fragments[] = {"\":", "\": \"", "\",", "\", \"", "{\"", "\"}", "[{", "}]", "},", "\n", "\n  ",
                             "\n    ", "  ", "    ", "\": [", "\": {", "true", "false", "null", "\\n"};
  for (const char* f : fragments) v.push_back(std::string(f));
  while (v.size() < size) {
    std::string word;
    const int kind = static_cast<int>(rng() % 10);
    if (kind < 6) {  // lower-case word, often with a leading space
      if (rng() % 2) word += ' ';
      const int n = 1 + length(rng);
      for (int i = 0; i < n; ++i) word += letters[std::min<size_t>(rng() % 26, rng() % 26)];
      if (kind == 0) word[word.size() - 1 - (word.size() > 1 ? 0 : 0)] = static_cast<char>(toupper(word.back()));
    } else if (kind < 8) {  // digits
      const int n = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) word += static_cast<char>('0' + rng() % 10);
    } else if (kind < 9) {  // punctuation runs
      const std::string punct = "{}[]\":,. -_()";
      const int n = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < n; ++i) word += punct[rng() % punct.size()];
    } else {  // multi-byte UTF-8 (CJK)
      const int n = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < n; ++i) {
        const uint32_t cp = 0x4E00 + rng() % 0x5000;
        word += static_cast<char>(0xE0 | (cp >> 12));
        word += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        word += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    if (seen.emplace(word, true).second) v.push_back(word);
  }
  return v;
}

// Greedy longest match over the vocabulary's bytes (stand-in tokenizer for the synthetic case).
std::vector<TokenId> GreedyTokenize(const TokenVocabulary& vocab, const std::string& text) {
  std::unordered_map<std::string, TokenId> ids;
  for (size_t id = 0; id < vocab.size(); ++id) {
    const std::string_view b = vocab.TokenBytes(static_cast<TokenId>(id));
    if (!b.empty()) ids.emplace(std::string(b), static_cast<TokenId>(id));
  }
  std::vector<TokenId> out;
  for (size_t pos = 0; pos < text.size();) {
    for (size_t len = std::min<size_t>(24, text.size() - pos); len > 0; --len) {
      auto it = ids.find(text.substr(pos, len));
      if (it != ids.end()) {
        out.push_back(it->second);
        pos += len;
        break;
      }
    }
  }
  return out;
}

struct Case {
  const char* name;
  std::string schema;  // "" = any JSON object
  std::vector<std::string> documents;
};

std::vector<Case> Cases(int documents) {
  Case schema{"JSON schema (tool call: object, enum, integer range, array, nested object, date)", kiln::kToolCallSchema, {}};
  Case any{"any JSON object (json_object mode)", "", {}};
  const char* cities[] = {"Paris", "Zürich", "東京", "São Paulo", "New York", "Reykjavík"};
  for (int i = 0; i < documents; ++i) {
    const std::string city = cities[i % 6];
    schema.documents.push_back(
        "{\"name\": \"weather report " + std::to_string(i) + " for the trip\", \"unit\": \"celsius\", \"days\": " +
        std::to_string(1 + i % 14) + ", \"tags\": [\"travel\", \"outdoor plans\", \"week " + std::to_string(i) +
        "\"], \"location\": {\"city\": \"" + city + "\", \"country\": \"somewhere far away\", \"lat\": " +
        std::to_string(40 + i) + ".125, \"lon\": -7.5}, \"start\": \"2026-0" + std::to_string(1 + i % 9) +
        "-15\", \"verbose\": false}");
    any.documents.push_back(
        "{\n  \"id\": " + std::to_string(1000 + i) + ",\n  \"title\": \"The quick brown fox jumps over the lazy dog in " +
        city + "\",\n  \"scores\": [0.5, 12, -3e2, " + std::to_string(i) +
        "],\n  \"meta\": {\"ok\": true, \"note\": null, \"nested\": {\"list\": [\"a\", \"bc\", \"def\"]}},\n  "
        "\"text\": \"Line one\\nLine two with \\\"quotes\\\" and unicode: " + city + "\"\n}");
  }
  return {schema, any};
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int documents = 12;
  std::string vocab_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--documents") documents = std::atoi(argv[i + 1]);
    if (flag == "--vocab") vocab_path = argv[i + 1];
  }
  if (vocab_path.empty()) {
    const char* dir = std::getenv("KILN_ASSET_DIR");
    const char* home = std::getenv("HOME");
    const std::string base = dir ? dir : std::string(home ? home : "/root") + "/.cache/kiln-assets";
    const std::string candidate = base + "/llama.cpp/models/ggml-vocab-gemma-4.gguf";
    if (std::filesystem::exists(candidate)) vocab_path = candidate;
  }
  std::shared_ptr<const TokenVocabulary> vocab;
  std::optional<kiln::tokenizer::ModelTokenizer> model;
  const auto load_start = Clock::now();
  if (!vocab_path.empty()) {
    auto loaded = kiln::tokenizer::LoadModelTokenizer(vocab_path);
    if (!loaded) {
      std::fprintf(stderr, "%s\n", loaded.error().ToString().c_str());
      return 1;
    }
    model = std::move(loaded).value();
    const auto trie_start = Clock::now();
    auto v = TokenVocabulary::FromTokenizer(model->tokenizer, model->stop_token_ids);
    if (!v) {
      std::fprintf(stderr, "%s\n", v.error().ToString().c_str());
      return 1;
    }
    vocab = *v;
    std::printf("vocabulary: %s (%zu tokens, %zu trie nodes; %zu tokens not plain, %zu nodes), tries built in %.0f ms\n",
                vocab_path.c_str(), vocab->size(), vocab->num_nodes(), vocab->rest_trie().token_ids.size(),
                vocab->rest_trie().num_nodes(), Microseconds(trie_start, Clock::now()) / 1000);
  } else {
    const TokenId eos[] = {1};
    auto v = TokenVocabulary::FromTokenBytes(SyntheticVocabulary(262144), eos);
    vocab = *v;
    std::printf("vocabulary: synthetic BPE-like (%zu tokens, %zu trie nodes), built in %.0f ms\n", vocab->size(),
                vocab->num_nodes(), Microseconds(load_start, Clock::now()) / 1000);
  }
  // KILN_BENCH_VERBOSE=US prints every step slower than US microseconds (500 when just set).
  const char* verbose = std::getenv("KILN_BENCH_VERBOSE");
  const double slow_step_us = verbose == nullptr ? 0 : std::atof(verbose) > 1 ? std::atof(verbose) : 500;
  std::vector<uint64_t> mask(vocab->mask_words());
  std::printf("| case | compile ms | steps | mask median us | p99 us | max us | first step us |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Case& c : Cases(documents)) {
    const auto compile_start = Clock::now();
    auto grammar = c.schema.empty() ? CompileAnyJson() : CompileJsonSchema(c.schema);
    const double compile_ms = Microseconds(compile_start, Clock::now()) / 1000;
    if (!grammar) {
      std::fprintf(stderr, "%s\n", grammar.error().ToString().c_str());
      return 1;
    }
    std::vector<double> steps, first;
    for (const std::string& doc : c.documents) {
      const std::vector<TokenId> ids = model ? model->tokenizer.Encode(doc) : GreedyTokenize(*vocab, doc);
      Matcher matcher(*grammar, vocab);
      for (size_t i = 0; i <= ids.size(); ++i) {
        const auto start = Clock::now();
        if (!matcher.FillMask(mask).ok()) return 1;
        const double us = Microseconds(start, Clock::now());
        steps.push_back(us);
        if (i == 0) first.push_back(us);
        if (slow_step_us > 0 && us > slow_step_us) {
          std::string prefix;
          for (size_t j = 0; j < i; ++j) prefix += vocab->TokenBytes(ids[j]);
          std::printf("  slow step %zu: %.0f us after ...%s\n", i, us,
                      prefix.substr(prefix.size() > 40 ? prefix.size() - 40 : 0).c_str());
        }
        const TokenId next = i < ids.size() ? ids[i] : vocab->eos_ids()[0];
        if (!((mask[next / 64] >> (next % 64)) & 1)) {
          std::fprintf(stderr, "%s: token %d at step %zu is not in the mask\n", c.name, next, i);
          return 1;
        }
        if (!matcher.Accept(next).ok()) return 1;
      }
    }
    std::printf("| %s | %.2f | %zu | %.1f | %.0f | %.0f | %.0f |\n", c.name, compile_ms, steps.size(),
                Percentile(steps, 0.5), Percentile(steps, 0.99), Percentile(steps, 1.0), Percentile(first, 0.5));
  }
  return 0;
}
