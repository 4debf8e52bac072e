// Tokenizer throughput: load time, encode and decode MB/s on long and short inputs.
//
//   tokenizer_bench [--repeats N] [PATH...]   # tokenizer.json files or .gguf vocabularies
//
// Without paths it uses the real tokenizers in the asset cache (scripts/fetch-tokenizer-assets.sh).
// Input: a fixed multilingual + code corpus (about 1 MB long input; 2,000 short prompts of
// ~100 bytes). "1st load" is the first load in the process (fresh memory); every other number
// is the median over the repeats (steady_clock).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer_json.h"

namespace {

using kiln::tokenizer::TokenId;
using kiln::tokenizer::Tokenizer;
using Clock = std::chrono::steady_clock;

double MedianSeconds(int repeats, const std::function<void()>& body) {
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    body();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::string Corpus() {
  const char* paragraphs[] = {
      "The quick brown fox jumps over the lazy dog. Language models read text as tokens, and a "
      "tokenizer that disagrees with the model's own by a single id changes what it sees.\n\n",
      "Über den Wolken muss die Freiheit wohl grenzenlos sein. Съешь же ещё этих мягких "
      "французских булок, да выпей чаю. Καλημέρα κόσμε.\n",
      "日本語のテキストと中文文本，以及한국어 문장。我想在apple工作1314151天～\n",
      "def tokenize(text):\n    for i, word in enumerate(text.split()):\n        yield i, word  # lazy\n\n",
      "Emoji: 👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🇫🇷 — done.   Multiple   spaces\tand\ttabs.\n",
  };
  std::string text;
  while (text.size() < (1 << 20)) {
    for (const char* p : paragraphs) text += p;
  }
  return text;
}

std::vector<std::string> ShortPrompts(const std::string& corpus) {
  std::vector<std::string> prompts;
  for (size_t i = 0; i < 2000; ++i) {
    size_t begin = (i * 7919) % (corpus.size() - 200);
    while (begin < corpus.size() && (static_cast<unsigned char>(corpus[begin]) & 0xC0) == 0x80) ++begin;
    size_t end = begin + 100;
    while (end < corpus.size() && (static_cast<unsigned char>(corpus[end]) & 0xC0) == 0x80) ++end;
    prompts.push_back(corpus.substr(begin, end - begin));
  }
  return prompts;
}

kiln::Result<Tokenizer> Load(const std::string& path) {
  if (path.ends_with(".gguf")) {
    TRY_ASSIGN(kiln::tokenizer::GgufVocab vocab, kiln::tokenizer::ReadGgufVocab(path));
    return kiln::tokenizer::TokenizerFromGguf(std::move(vocab));
  }
  return kiln::tokenizer::LoadTokenizerJsonFile(path);
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 5;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.empty()) {
    const char* env = std::getenv("KILN_ASSET_DIR");
    const std::string dir = env != nullptr ? env : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") + "/.cache/kiln-assets";
    for (const char* rel : {"gemma3/tokenizer.json", "llama.cpp/models/ggml-vocab-gemma-4.gguf", "llama3/tokenizer.json",
                            "qwen3/tokenizer.json", "mistral/tokenizer.json"}) {
      if (std::filesystem::exists(dir + "/" + rel)) paths.push_back(dir + "/" + rel);
    }
    if (paths.empty()) {
      std::fprintf(stderr, "no tokenizers given or cached; run scripts/fetch-tokenizer-assets.sh\n");
      return 1;
    }
  }
  const std::string corpus = Corpus();
  const std::vector<std::string> prompts = ShortPrompts(corpus);
  size_t prompt_bytes = 0;
  for (const auto& p : prompts) prompt_bytes += p.size();
  const double mb = 1e6;
  std::printf("%-40s %10s %9s %12s %12s %12s %10s\n", "tokenizer", "1st load", "load ms", "encode MB/s", "short MB/s",
              "decode MB/s", "bytes/tok");
  for (const std::string& path : paths) {
    const auto first_start = Clock::now();
    kiln::Result<Tokenizer> loaded = Load(path);  // also warms the page cache
    const double first_load_s = std::chrono::duration<double>(Clock::now() - first_start).count();
    if (!loaded.has_value()) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), loaded.error().ToString().c_str());
      return 1;
    }
    const double load_s = MedianSeconds(std::min(repeats, 3), [&] { (void)Load(path); });
    const Tokenizer& tok = loaded.value();
    std::vector<TokenId> ids;
    const double encode_s = MedianSeconds(repeats, [&] { ids = tok.Encode(corpus); });
    const double short_s = MedianSeconds(repeats, [&] {
      for (const auto& p : prompts) (void)tok.Encode(p);
    });
    std::string decoded;
    const double decode_s = MedianSeconds(repeats, [&] { decoded = tok.Decode(ids); });
    std::string name = std::filesystem::path(path).parent_path().filename().string() + "/" +
                       std::filesystem::path(path).filename().string();
    std::printf("%-40s %10.1f %9.1f %12.2f %12.2f %12.2f %10.2f\n", name.c_str(), first_load_s * 1e3, load_s * 1e3,
                corpus.size() / mb / encode_s,
                prompt_bytes / mb / short_s, decoded.size() / mb / decode_s, static_cast<double>(corpus.size()) / ids.size());
  }
  return 0;
}
