#include "tokenizer/gguf_vocab.h"

#include <unordered_map>

#include "io/gguf.h"

namespace kiln::tokenizer {
namespace {

// Optional keys: absent leaves the field as it is; present with the wrong type is an error.
Status ReadOptionalString(const GgufMetadata& m, std::string_view key, std::string* out) {
  if (!m.Has(key)) return Status::Ok();
  TRY_ASSIGN(*out, m.GetString(key));
  return Status::Ok();
}

// Token ids come as u32 or i32 (and occasionally other integer types) depending on the writer.
Status ReadOptionalId(const GgufMetadata& m, std::string_view key, std::optional<TokenId>* out) {
  if (!m.Has(key)) return Status::Ok();
  TRY_ASSIGN(*out, m.GetI32(key));
  return Status::Ok();
}

// Flags are bool, though some writers use an integer.
Status ReadOptionalFlag(const GgufMetadata& m, std::string_view key, std::optional<bool>* out) {
  const GgufValue* value = m.Find(key);
  if (value == nullptr) return Status::Ok();
  if (value->type() == GgufValueType::kBool) {
    *out = *value->AsBool();
    return Status::Ok();
  }
  TRY_ASSIGN(int64_t v, m.GetI64(key));
  *out = v != 0;
  return Status::Ok();
}

}  // namespace

Result<GgufVocab> ReadGgufVocab(const std::string& path) {
  // Maps the file and validates its metadata and tensor table; the tensor data is not read.
  TRY_ASSIGN(GgufFile file, GgufFile::Open(path));
  return GgufVocabFrom(file, path);
}

Result<GgufVocab> GgufVocabFrom(const GgufFile& file, const std::string& path) {
  const GgufMetadata& m = file.metadata();
  GgufVocab vocab;
  TRY(ReadOptionalString(m, "general.architecture", &vocab.architecture));
  TRY(ReadOptionalString(m, "tokenizer.ggml.model", &vocab.model));
  TRY(ReadOptionalString(m, "tokenizer.ggml.pre", &vocab.pre));
  TRY(ReadOptionalString(m, "tokenizer.chat_template", &vocab.chat_template));
  const GgufValue* tokens = m.Find("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->type() != GgufValueType::kArray) {
    return Error(ErrorCode::kNotFound, path + ": no tokenizer.ggml.tokens (not a model or vocab file?)");
  }
  // One pass over each big array, straight into the vocabulary (no intermediate list).
  if (tokens->element_type() != GgufValueType::kString) {
    return m.GetStringArray("tokenizer.ggml.tokens").status();  // the wrong-type error
  }
  vocab.tokens.reserve(static_cast<size_t>(tokens->count()));
  tokens->ForEachElement([&](const GgufValue& piece) { vocab.tokens.emplace_back(*piece.AsString()); });
  if (const GgufValue* merges = m.Find("tokenizer.ggml.merges")) {
    if (merges->type() != GgufValueType::kArray || merges->element_type() != GgufValueType::kString) {
      return m.GetStringArray("tokenizer.ggml.merges").status();
    }
    vocab.merges.Reserve(merges->count(), merges->count() * 12);
    merges->ForEachElement([&](const GgufValue& element) {
      const std::string_view merge = *element.AsString();
      // Split at the first space after the first byte (llama.cpp).
      const size_t space = merge.find(' ', 1);
      if (space == std::string_view::npos) {
        vocab.merges.Add("", "");  // keeps ranks aligned; never matches (llama.cpp ignores it too)
      } else {
        vocab.merges.Add(merge.substr(0, space), merge.substr(space + 1));
      }
    });
  }
  if (m.Has("tokenizer.ggml.token_type")) {
    TRY_ASSIGN(std::vector<int64_t> types, m.GetIntArray("tokenizer.ggml.token_type"));
    vocab.token_types.assign(types.begin(), types.end());
  }
  TRY(ReadOptionalId(m, "tokenizer.ggml.bos_token_id", &vocab.bos_id));
  TRY(ReadOptionalId(m, "tokenizer.ggml.eos_token_id", &vocab.eos_id));
  TRY(ReadOptionalId(m, "tokenizer.ggml.eot_token_id", &vocab.eot_id));
  TRY(ReadOptionalId(m, "tokenizer.ggml.eom_token_id", &vocab.eom_id));
  TRY(ReadOptionalId(m, "tokenizer.ggml.unknown_token_id", &vocab.unk_id));
  TRY(ReadOptionalId(m, "tokenizer.ggml.padding_token_id", &vocab.pad_id));
  TRY(ReadOptionalFlag(m, "tokenizer.ggml.add_bos_token", &vocab.add_bos));
  TRY(ReadOptionalFlag(m, "tokenizer.ggml.add_eos_token", &vocab.add_eos));
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
