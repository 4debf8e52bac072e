#include "tokenizer/gguf_vocab.h"

#include <cstring>
#include <filesystem>
#include <fstream>

namespace kiln::tokenizer {
namespace {

enum GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

size_t ScalarSize(uint32_t type) {
  switch (type) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    default: return 0;
  }
}

// Buffered, bounds-checked reader over the file.
class Reader {
 public:
  Reader(std::ifstream* in, uint64_t file_size) : in_(in), file_size_(file_size) {}
  Status Read(void* out, size_t size) {
    if (size > file_size_ - offset_) return Error(ErrorCode::kMalformed, "GGUF metadata runs past the end of the file at byte " + std::to_string(offset_));
    in_->read(static_cast<char*>(out), static_cast<std::streamsize>(size));
    if (!*in_) return Error(ErrorCode::kIo, "GGUF read failed at byte " + std::to_string(offset_));
    offset_ += size;
    return Status::Ok();
  }
  Status Skip(uint64_t size) {
    if (size > file_size_ - offset_) return Error(ErrorCode::kMalformed, "GGUF metadata runs past the end of the file");
    in_->seekg(static_cast<std::streamoff>(size), std::ios::cur);
    offset_ += size;
    return Status::Ok();
  }
  template <typename T>
  Result<T> Get() {
    T value{};
    TRY(Read(&value, sizeof(T)));
    return value;
  }
  Result<std::string> String() {
    TRY_ASSIGN(uint64_t length, Get<uint64_t>());
    if (length > file_size_ - offset_) return Error(ErrorCode::kMalformed, "GGUF string longer than the file");
    std::string s(static_cast<size_t>(length), '\0');
    TRY(Read(s.data(), s.size()));
    return s;
  }
  uint64_t remaining() const { return file_size_ - offset_; }

 private:
  std::ifstream* in_;
  uint64_t file_size_;
  uint64_t offset_ = 0;
};

Status SkipValue(Reader* r, uint32_t type, int depth) {
  if (type == kString) return r->String().status();
  if (const size_t size = ScalarSize(type)) return r->Skip(size);
  if (type != kArray || depth > 2) return Error(ErrorCode::kMalformed, "GGUF value of unknown type " + std::to_string(type));
  TRY_ASSIGN(uint32_t item_type, r->Get<uint32_t>());
  TRY_ASSIGN(uint64_t count, r->Get<uint64_t>());
  if (count > r->remaining()) return Error(ErrorCode::kMalformed, "GGUF array longer than the file");
  if (const size_t size = ScalarSize(item_type)) return r->Skip(count * size);
  for (uint64_t i = 0; i < count; ++i) TRY(SkipValue(r, item_type, depth + 1));
  return Status::Ok();
}

Result<int64_t> ReadInteger(Reader* r, uint32_t type) {
  switch (type) {
    case kU8: { TRY_ASSIGN(uint8_t v, r->Get<uint8_t>()); return static_cast<int64_t>(v); }
    case kI8: { TRY_ASSIGN(int8_t v, r->Get<int8_t>()); return static_cast<int64_t>(v); }
    case kU16: { TRY_ASSIGN(uint16_t v, r->Get<uint16_t>()); return static_cast<int64_t>(v); }
    case kI16: { TRY_ASSIGN(int16_t v, r->Get<int16_t>()); return static_cast<int64_t>(v); }
    case kU32: { TRY_ASSIGN(uint32_t v, r->Get<uint32_t>()); return static_cast<int64_t>(v); }
    case kI32: { TRY_ASSIGN(int32_t v, r->Get<int32_t>()); return static_cast<int64_t>(v); }
    case kU64: { TRY_ASSIGN(uint64_t v, r->Get<uint64_t>()); return static_cast<int64_t>(v); }
    case kI64: { TRY_ASSIGN(int64_t v, r->Get<int64_t>()); return v; }
    case kBool: { TRY_ASSIGN(uint8_t v, r->Get<uint8_t>()); return static_cast<int64_t>(v); }
    default: return Error(ErrorCode::kMalformed, "GGUF integer key has type " + std::to_string(type));
  }
}

// Reads an array of strings (or, with `ints`, of integers; or, with `merges`, of merge rules)
// after its type tag.
Status ReadArray(Reader* r, std::vector<std::string>* strings, std::vector<int32_t>* ints, MergeList* merges = nullptr) {
  TRY_ASSIGN(uint32_t item_type, r->Get<uint32_t>());
  TRY_ASSIGN(uint64_t count, r->Get<uint64_t>());
  if (count > r->remaining()) return Error(ErrorCode::kMalformed, "GGUF array longer than the file");
  if (merges != nullptr) {
    if (item_type != kString) return Error(ErrorCode::kMalformed, "GGUF merges array is not of strings");
    merges->Reserve(count, count * 12);
    for (uint64_t i = 0; i < count; ++i) {
      TRY_ASSIGN(std::string m, r->String());
      const size_t space = m.find(' ', 1);
      if (space == std::string::npos) {
        merges->Add("", "");  // keeps ranks aligned; never matches (llama.cpp ignores it too)
        continue;
      }
      merges->Add(std::string_view(m).substr(0, space), std::string_view(m).substr(space + 1));
    }
    return Status::Ok();
  }
  if (strings != nullptr) {
    if (item_type != kString) return Error(ErrorCode::kMalformed, "GGUF tokenizer array is not of strings");
    strings->reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      TRY_ASSIGN(std::string s, r->String());
      strings->push_back(std::move(s));
    }
    return Status::Ok();
  }
  ints->reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    TRY_ASSIGN(int64_t v, ReadInteger(r, item_type));
    ints->push_back(static_cast<int32_t>(v));
  }
  return Status::Ok();
}

}  // namespace

Result<GgufVocab> ReadGgufVocab(const std::string& path) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) return Error(ErrorCode::kNotFound, path + ": " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(ErrorCode::kIo, path + ": cannot open");
  Reader r(&in, file_size);
  char magic[4];
  TRY(r.Read(magic, 4));
  if (std::memcmp(magic, "GGUF", 4) != 0) return Error(ErrorCode::kMalformed, path + ": not a GGUF file (bad magic)");
  TRY_ASSIGN(uint32_t version, r.Get<uint32_t>());
  if (version < 2 || version > 3) {
    return Error(ErrorCode::kVersionMismatch, path + ": GGUF version " + std::to_string(version) + " (supported: 2, 3)");
  }
  TRY(r.Get<uint64_t>());  // tensor count: not needed
  TRY_ASSIGN(uint64_t num_keys, r.Get<uint64_t>());
  if (num_keys > r.remaining()) return Error(ErrorCode::kMalformed, path + ": key count larger than the file");
  GgufVocab vocab;
  for (uint64_t k = 0; k < num_keys; ++k) {
    TRY_ASSIGN(std::string key, r.String());
    TRY_ASSIGN(uint32_t type, r.Get<uint32_t>());
    auto optional_id = [&](std::optional<TokenId>* out) -> Status {
      TRY_ASSIGN(int64_t v, ReadInteger(&r, type));
      *out = static_cast<TokenId>(v);
      return Status::Ok();
    };
    auto optional_bool = [&](std::optional<bool>* out) -> Status {
      TRY_ASSIGN(int64_t v, ReadInteger(&r, type));
      *out = v != 0;
      return Status::Ok();
    };
    auto string_value = [&](std::string* out) -> Status {
      if (type != kString) return Error(ErrorCode::kMalformed, key + " is not a string");
      TRY_ASSIGN(*out, r.String());
      return Status::Ok();
    };
    Status status;
    if (key == "general.architecture") status = string_value(&vocab.architecture);
    else if (key == "tokenizer.ggml.model") status = string_value(&vocab.model);
    else if (key == "tokenizer.ggml.pre") status = string_value(&vocab.pre);
    else if (key == "tokenizer.chat_template") status = string_value(&vocab.chat_template);
    else if (key == "tokenizer.ggml.tokens" && type == kArray) status = ReadArray(&r, &vocab.tokens, nullptr);
    else if (key == "tokenizer.ggml.merges" && type == kArray) status = ReadArray(&r, nullptr, nullptr, &vocab.merges);
    else if (key == "tokenizer.ggml.token_type" && type == kArray) status = ReadArray(&r, nullptr, &vocab.token_types);
    else if (key == "tokenizer.ggml.bos_token_id") status = optional_id(&vocab.bos_id);
    else if (key == "tokenizer.ggml.eos_token_id") status = optional_id(&vocab.eos_id);
    else if (key == "tokenizer.ggml.eot_token_id") status = optional_id(&vocab.eot_id);
    else if (key == "tokenizer.ggml.eom_token_id") status = optional_id(&vocab.eom_id);
    else if (key == "tokenizer.ggml.unknown_token_id") status = optional_id(&vocab.unk_id);
    else if (key == "tokenizer.ggml.padding_token_id") status = optional_id(&vocab.pad_id);
    else if (key == "tokenizer.ggml.add_bos_token") status = optional_bool(&vocab.add_bos);
    else if (key == "tokenizer.ggml.add_eos_token") status = optional_bool(&vocab.add_eos);
    else status = SkipValue(&r, type, 0);
    if (!status.ok()) return status.error().WithContext(path + ": key '" + key + "'");
  }
  if (vocab.tokens.empty()) return Error(ErrorCode::kNotFound, path + ": no tokenizer.ggml.tokens (not a model or vocab file?)");
  return vocab;
}

Result<Tokenizer> TokenizerFromGguf(GgufVocab vocab) {
  auto decoder_step = [](DecoderKind kind, std::string pattern = "", std::string content = "") {
    DecoderStep step;
    step.kind = kind;
    step.pattern = std::move(pattern);
    step.content = std::move(content);
    return step;
  };
  TokenizerSpec spec;
  const bool gemma4 = vocab.model == "gemma4";
  if (!gemma4 && vocab.model != "gpt2") {
    return Error(ErrorCode::kUnsupported, "GGUF tokenizer model '" + vocab.model + "' is not supported (supported: gemma4, gpt2)");
  }
  if (!vocab.token_types.empty() && vocab.token_types.size() != vocab.tokens.size()) {
    return Error(ErrorCode::kMalformed, "GGUF token_type has " + std::to_string(vocab.token_types.size()) +
                                            " entries for " + std::to_string(vocab.tokens.size()) + " tokens");
  }
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const int32_t type = vocab.token_types.empty() ? 1 : vocab.token_types[id];
    if (type == 3 || type == 4) {
      // Also kept as a BPE piece: merges may produce it (llama.cpp looks up every token).
      spec.added_tokens.push_back(AddedToken{.id = static_cast<TokenId>(id), .content = vocab.tokens[id], .special = type == 3});
    }
  }
  spec.pieces = std::move(vocab.tokens);
  // Duplicate strings (unused slots) must not break the piece map: keep the first.
  {
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t id = 0; id < spec.pieces.size(); ++id) {
      if (!spec.pieces[id].empty() && !seen.emplace(spec.pieces[id], id).second) spec.pieces[id].clear();
    }
  }
  const size_t num_merges = vocab.merges.size();
  spec.merges = std::move(vocab.merges);
  if (gemma4) {
    spec.normalizer.steps.push_back({.kind = NormalizerKind::kReplace, .pattern = " ", .content = "\xE2\x96\x81"});
    PreTokenizerStep split;
    TRY_ASSIGN(split.regex, Regex::Compile("[^\\n]+|[\\n]+"));
    spec.pre_tokenizer.steps.push_back(std::move(split));
    spec.bpe_options.byte_fallback = true;
    spec.bpe_options.newline_runs_whole = true;
    spec.decoder.steps.push_back(decoder_step(DecoderKind::kReplace, "\xE2\x96\x81", " "));
    spec.decoder.steps.push_back(decoder_step(DecoderKind::kByteFallback));
    spec.decoder.steps.push_back(decoder_step(DecoderKind::kFuse));
  } else {
    std::string pattern(kGpt2SplitPattern);
    if (vocab.pre == "llama-bpe" || vocab.pre == "llama3") {
      pattern = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
      spec.bpe_options.ignore_merges = true;
    } else if (vocab.pre == "qwen2") {
      pattern = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    }
    PreTokenizerStep split;
    TRY_ASSIGN(split.regex, Regex::Compile(pattern));
    spec.pre_tokenizer.steps.push_back(std::move(split));
    PreTokenizerStep byte_level;
    byte_level.kind = PreTokenizerKind::kByteLevel;
    spec.pre_tokenizer.steps.push_back(std::move(byte_level));
    spec.decoder.steps.push_back(decoder_step(DecoderKind::kByteLevel));
  }
  if (vocab.add_bos.value_or(gemma4) && vocab.bos_id) spec.prefix_ids.push_back(*vocab.bos_id);
  if (vocab.add_eos.value_or(false) && vocab.eos_id) spec.suffix_ids.push_back(*vocab.eos_id);
  spec.description = "GGUF " + vocab.model + " BPE (pre '" + vocab.pre + "'), " + std::to_string(spec.pieces.size()) +
                     " tokens, " + std::to_string(num_merges) + " merges";
  return Tokenizer::Create(std::move(spec));
}

}  // namespace kiln::tokenizer
