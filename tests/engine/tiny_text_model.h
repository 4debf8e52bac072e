// A text side for the tokenizer-less fixtures (tests/fixtures/*): a tokenizer.json over the
// fixtures' 512 ids and a tiny chat template, written next to a copy of a fixture's weights.
//
//   ids 0-3      <pad> <eos> <bos> <unk> (special)
//   ids 4-259    byte-fallback pieces <0x00>..<0xFF>
//   ids 260-511  "▁w260" .. "▁w511", decoded as " w260" .. " w511"
//
// So the fixtures' generated ids decode to predictable text: g31b's greedy 318, 311 reads
// " w318 w311", and a stop string "18 w3" spans the two tokens. Any text encodes (unknown
// characters fall back to their bytes). Chat template:
//   <bos><role>content\n ... (assistant written as model), then "<model>" as the generation prompt.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace kiln::testing {

inline std::string TinyTokenizerJson() {
  std::string vocab = R"("<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3)";
  char piece[16];
  for (int byte = 0; byte < 256; ++byte) {
    std::snprintf(piece, sizeof(piece), "<0x%02X>", byte);
    vocab += std::string(", \"") + piece + "\": " + std::to_string(4 + byte);
  }
  for (int id = 260; id < 512; ++id) vocab += ", \"\u2581w" + std::to_string(id) + "\": " + std::to_string(id);
  return R"({
  "version": "1.0",
  "added_tokens": [
    {"id": 0, "content": "<pad>", "special": true, "normalized": false},
    {"id": 1, "content": "<eos>", "special": true, "normalized": false},
    {"id": 2, "content": "<bos>", "special": true, "normalized": false},
    {"id": 3, "content": "<unk>", "special": true, "normalized": false}
  ],
  "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
    "vocab": {)" + vocab + R"(}, "merges": []}
})";
}

inline const char kTinyTokenizerConfig[] = R"({"bos_token": "<bos>", "eos_token": "<eos>", "add_bos_token": true,
  "chat_template": "{{ bos_token }}{% for m in messages %}<{% if m.role == 'assistant' %}model{% else %}{{ m.role }}{% endif %}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<model>{% endif %}"})";

// Copies `fixture_dir`'s config, generation config and weights to `out_dir`.<pid> and adds the
// tokenizer files; returns that directory. The process id keeps tests that ctest runs in
// parallel (one process each) from rewriting a directory another one is reading.
inline std::string MakeTextModel(const std::string& fixture_dir, const std::string& base_dir) {
  namespace fs = std::filesystem;
  const std::string out_dir = base_dir + "." + std::to_string(::getpid());
  fs::remove_all(out_dir);
  fs::create_directories(out_dir);
  for (const char* name : {"config.json", "generation_config.json", "model.safetensors"}) {
    fs::copy_file(fs::path(fixture_dir) / name, fs::path(out_dir) / name);
  }
  std::ofstream(fs::path(out_dir) / "tokenizer.json") << TinyTokenizerJson();
  std::ofstream(fs::path(out_dir) / "tokenizer_config.json") << kTinyTokenizerConfig;
  return out_dir;
}

// Removes a MakeTextModel directory when the test process ends.
class TextModelDir {
 public:
  TextModelDir(const std::string& fixture_dir, const std::string& base_dir)
      : path_(MakeTextModel(fixture_dir, base_dir)) {}
  ~TextModelDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TextModelDir(const TextModelDir&) = delete;
  TextModelDir& operator=(const TextModelDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace kiln::testing
