#include "tokenizer/model_tokenizer.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/format_sniff.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer_json.h"

namespace kiln::tokenizer {
namespace {

using nlohmann::ordered_json;

// Parses an optional JSON file: null when it does not exist.
Result<ordered_json> ReadOptionalJson(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return ordered_json();
  TRY_ASSIGN(std::string text, ReadFileToString(path));
  ordered_json j = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(ErrorCode::kMalformed, path + ": not valid JSON");
  return j;
}

void AddStop(std::vector<TokenId>* stops, std::optional<TokenId> id) {
  if (id && *id >= 0 && std::find(stops->begin(), stops->end(), *id) == stops->end()) stops->push_back(*id);
}

void AddIdsFrom(const ordered_json& j, std::vector<TokenId>* stops) {
  if (j.is_number_integer()) AddStop(stops, j.get<TokenId>());
  if (j.is_array()) {
    for (const auto& item : j) {
      if (item.is_number_integer()) AddStop(stops, item.get<TokenId>());
    }
  }
}

// "<eos>" or {"content": "<eos>", ...} (AddedToken form).
std::string TokenString(const ordered_json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

Result<ModelTokenizer> LoadDirectory(const std::string& dir) {
  TRY_ASSIGN(Tokenizer tok, LoadTokenizerJsonFile(dir + "/tokenizer.json"));
  TRY_ASSIGN(ordered_json tokenizer_config, ReadOptionalJson(dir + "/tokenizer_config.json"));
  TRY_ASSIGN(ordered_json config, ReadOptionalJson(dir + "/config.json"));
  TRY_ASSIGN(ordered_json generation_config, ReadOptionalJson(dir + "/generation_config.json"));
  ModelTokenizer m{std::move(tok), std::nullopt, "", "", false, {}, dir};
  const ordered_json empty = ordered_json::object();
  const ordered_json& tc = tokenizer_config.is_object() ? tokenizer_config : empty;
  m.bos_token = tc.contains("bos_token") ? TokenString(tc["bos_token"]) : "";
  m.eos_token = tc.contains("eos_token") ? TokenString(tc["eos_token"]) : "";
  m.add_bos_token = tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()
                        ? tc["add_bos_token"].get<bool>()
                        : !m.tokenizer.prefix_ids().empty();

  // The template: chat_template.jinja wins over tokenizer_config.json (transformers >= 4.43).
  std::string source;
  std::error_code ec;
  if (std::filesystem::exists(dir + "/chat_template.jinja", ec)) {
    TRY_ASSIGN(source, ReadFileToString(dir + "/chat_template.jinja"));
  } else if (tc.contains("chat_template")) {
    const ordered_json& t = tc["chat_template"];
    // Anything else would silently mean "no template".
    if (!t.is_string() && !t.is_array() && !t.is_null()) {
      return Error(ErrorCode::kMalformed, dir + "/tokenizer_config.json: \"chat_template\" must be a string or a list of "
                                                "{\"name\", \"template\"}, found " + std::string(t.type_name()));
    }
    if (t.is_string()) source = t.get<std::string>();
    if (t.is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const auto& named : t) {
        if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
            named["template"].is_string()) {
          source = named["template"].get<std::string>();
        }
      }
    }
  }
  if (!source.empty()) {
    Result<ChatTemplate> tmpl = ChatTemplate::Parse(source, m.bos_token, m.eos_token);
    if (!tmpl.has_value()) return tmpl.error().WithContext(dir + ": chat template");
    m.chat_template = std::move(tmpl).value();
  }

  if (generation_config.is_object() && generation_config.contains("eos_token_id")) {
    AddIdsFrom(generation_config["eos_token_id"], &m.stop_token_ids);
  }
  if (config.is_object()) {
    if (config.contains("eos_token_id")) AddIdsFrom(config["eos_token_id"], &m.stop_token_ids);
    if (config.contains("text_config") && config["text_config"].is_object() && config["text_config"].contains("eos_token_id")) {
      AddIdsFrom(config["text_config"]["eos_token_id"], &m.stop_token_ids);
    }
  }
  if (!m.eos_token.empty()) AddStop(&m.stop_token_ids, m.tokenizer.PieceToId(m.eos_token));
  return m;
}

Result<ModelTokenizer> FromGgufVocab(GgufVocab vocab, const std::string& path) {
  auto text_of = [&](std::optional<TokenId> id) {
    return id && *id >= 0 && static_cast<size_t>(*id) < vocab.tokens.size() ? vocab.tokens[*id] : std::string();
  };
  const std::string bos = text_of(vocab.bos_id), eos = text_of(vocab.eos_id);
  const std::optional<TokenId> eos_id = vocab.eos_id, eot_id = vocab.eot_id, eom_id = vocab.eom_id;
  const std::string chat_template = vocab.chat_template;
  const bool gemma4 = vocab.model == "gemma4";
  const bool add_bos = vocab.add_bos.value_or(gemma4);
  Result<Tokenizer> tok = TokenizerFromGguf(std::move(vocab));
  if (!tok.has_value()) return tok.error().WithContext(path);
  ModelTokenizer m{std::move(tok).value(), std::nullopt, bos, eos, add_bos, {}, path};
  if (!chat_template.empty()) {
    Result<ChatTemplate> tmpl = ChatTemplate::Parse(chat_template, bos, eos);
    if (!tmpl.has_value()) return tmpl.error().WithContext(path + ": chat template");
    m.chat_template = std::move(tmpl).value();
  }
  AddStop(&m.stop_token_ids, eos_id);
  AddStop(&m.stop_token_ids, eot_id);
  AddStop(&m.stop_token_ids, eom_id);
  for (const char* text : {"<end_of_turn>", "<turn|>", "<|tool_response>", "<|eot_id|>", "<|eom_id|>", "<|im_end|>"}) {
    const std::optional<TokenId> id = m.tokenizer.PieceToId(text);
    if (id && m.tokenizer.IsSpecial(*id)) AddStop(&m.stop_token_ids, id);
  }
  return m;
}

Result<ModelTokenizer> LoadGguf(const std::string& path) {
  TRY_ASSIGN(GgufVocab vocab, ReadGgufVocab(path));
  return FromGgufVocab(std::move(vocab), path);
}

}  // namespace

Result<ModelTokenizer> LoadModelTokenizerFromGguf(std::span<const uint8_t> image, const std::string& name) {
  TRY_ASSIGN(GgufFile file, GgufFile::ParseImage(image, name));
  TRY_ASSIGN(GgufVocab vocab, GgufVocabFrom(file, name));
  return FromGgufVocab(std::move(vocab), name);
}

Result<ModelTokenizer> LoadModelTokenizer(const std::string& path) {
  // Told by the first bytes (io/format_sniff.h), so a .kiln or a lone .safetensors is named as such.
  const SniffedPath sniffed = SniffPath(path);
  switch (sniffed.format) {
    case FileFormat::kDirectory:
      return LoadDirectory(path);
    case FileFormat::kJson: {
      // A bare tokenizer.json: its directory may hold the rest.
      const std::string directory = std::filesystem::path(path).parent_path().string();
      return LoadDirectory(directory.empty() ? "." : directory);
    }
    case FileFormat::kGguf:
      return LoadGguf(path);
    case FileFormat::kKiln:
      return Error(ErrorCode::kUnsupported, path + " is a compiled .kiln artifact; its tokenizer is read through the model loader "
                                                   "(kiln tokenize, run and perplexity do), not from the file alone");
    default:
      return ModelInputError(path, sniffed);
  }
}

}  // namespace kiln::tokenizer
