#include "engine/model_text.h"

#include <algorithm>
#include <filesystem>

#include "engine/gguf_source.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer_json.h"

namespace kiln {

namespace {

using nlohmann::ordered_json;

// An optional JSON file: null when absent.
Result<ordered_json> ReadJson(const ModelFileReader& read_file, const std::string& name) {
  std::optional<std::string> text = read_file(name);
  if (!text) return ordered_json();
  TRY(RejectDuplicateKeys(*text, name));
  ordered_json j = ordered_json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(ErrorCode::kMalformed, name + ": not valid JSON");
  return j;
}

void AddStop(std::vector<int32_t>* stops, std::optional<int32_t> id) {
  if (id && *id >= 0 && std::find(stops->begin(), stops->end(), *id) == stops->end()) stops->push_back(*id);
}

void AddIdsFrom(const ordered_json& j, std::vector<int32_t>* stops) {
  if (j.is_number_integer()) AddStop(stops, j.get<int32_t>());
  if (!j.is_array()) return;
  for (const auto& item : j) {
    if (item.is_number_integer()) AddStop(stops, item.get<int32_t>());
  }
}

// "<eos>" or {"content": "<eos>"}.
std::string TokenString(const ordered_json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

// tokenizer_config.json "chat_template": a string, or [{"name": "default", "template": ...}].
// Anything else is an error: treating it as "no template" would silently change every prompt.
Result<std::string> TemplateFrom(const ordered_json& tokenizer_config) {
  if (!tokenizer_config.contains("chat_template") || tokenizer_config["chat_template"].is_null()) return std::string();
  const ordered_json& t = tokenizer_config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (!t.is_array()) {
    return Error(ErrorCode::kMalformed, std::string("tokenizer_config.json: \"chat_template\" must be a string or a list of "
                                                    "{\"name\", \"template\"}, found ") + t.type_name());
  }
  std::string source;
  for (const auto& named : t) {
    if (named.is_object() && named.value("name", "") == "default" && named.contains("template") && named["template"].is_string()) {
      source = named["template"].get<std::string>();
    }
  }
  return source;
}

// generation_config.json's sampling. A key of the wrong type or an unusable value is an error
// naming it: falling back to greedy decoding would change the output without a word.
Result<SamplingOptions> SamplingFrom(const ordered_json& generation_config) {
  SamplingOptions options;
  if (generation_config.is_null()) return options;
  const std::string file = "generation_config.json";
  if (!generation_config.is_object()) return Error(ErrorCode::kMalformed, file + " must hold an object, found " + generation_config.type_name());
  const ordered_json do_sample = generation_config.value("do_sample", ordered_json(false));
  if (!do_sample.is_boolean()) {
    return Error(ErrorCode::kMalformed, file + ": \"do_sample\" must be true or false, found " + do_sample.type_name());
  }
  // Checked whether or not do_sample is set: a wrong type is a mistake either way.
  for (const char* key : {"temperature", "top_k", "top_p", "min_p", "repetition_penalty"}) {
    if (generation_config.contains(key) && !generation_config[key].is_null() && !generation_config[key].is_number()) {
      return Error(ErrorCode::kMalformed, file + ": \"" + key + "\" must be a number, found " + generation_config[key].type_name());
    }
  }
  if (!do_sample.get<bool>()) return options;
  auto number = [&](const char* key, double fallback) {
    return generation_config.contains(key) && generation_config[key].is_number() ? generation_config[key].get<double>()
                                                                                  : fallback;
  };
  // transformers' defaults when do_sample is set: temperature 1, top_k 50, top_p 1.
  options.temperature = static_cast<float>(number("temperature", 1.0));
  options.top_k = static_cast<int64_t>(number("top_k", 50.0));
  options.top_p = static_cast<float>(number("top_p", 1.0));
  options.min_p = static_cast<float>(number("min_p", 0.0));
  options.repetition_penalty = static_cast<float>(number("repetition_penalty", 1.0));
  if (Status valid = options.Validate(); !valid.ok()) return Error(ErrorCode::kMalformed, file + ": " + valid.error().message());
  return options;
}

}  // namespace

Result<const tokenizer::ModelTokenizer*> ModelText::RequireTokenizer() const {
  if (tokenizer) return &*tokenizer;
  return Error(ErrorCode::kNotFound, model_name +
                                         " has no tokenizer.json: give the prompt as token ids with --prompt-tokens "
                                         "ID,ID,... and print ids with --output-tokens");
}

Result<ModelText> LoadModelText(const ModelFileReader& read_file, const std::string& model_name) {
  ModelText text;
  text.model_name = model_name;
  TRY_ASSIGN(ordered_json tokenizer_config, ReadJson(read_file, "tokenizer_config.json"));
  TRY_ASSIGN(ordered_json config, ReadJson(read_file, "config.json"));
  TRY_ASSIGN(ordered_json generation_config, ReadJson(read_file, "generation_config.json"));
  const ordered_json empty = ordered_json::object();
  const ordered_json& tc = tokenizer_config.is_object() ? tokenizer_config : empty;

  if (generation_config.is_object() && generation_config.contains("eos_token_id")) {
    AddIdsFrom(generation_config["eos_token_id"], &text.stop_token_ids);
  }
  if (config.is_object()) {
    if (config.contains("eos_token_id")) AddIdsFrom(config["eos_token_id"], &text.stop_token_ids);
    if (config.contains("text_config") && config["text_config"].is_object() &&
        config["text_config"].contains("eos_token_id")) {
      AddIdsFrom(config["text_config"]["eos_token_id"], &text.stop_token_ids);
    }
  }
  Result<SamplingOptions> sampling = SamplingFrom(generation_config);
  if (!sampling) return sampling.error().WithContext(model_name);
  text.default_sampling = *sampling;
  Result<std::string> template_source = TemplateFrom(tc);
  if (!template_source) return template_source.error().WithContext(model_name);

  // A .kiln compiled from a GGUF carries its tokenizer as GGUF metadata (gguf_source.h).
  if (std::optional<std::string> image = read_file(kGgufTokenizerFile)) {
    Result<tokenizer::ModelTokenizer> tok = tokenizer::LoadModelTokenizerFromGguf(
        {reinterpret_cast<const uint8_t*>(image->data()), image->size()}, model_name + ": " + kGgufTokenizerFile);
    if (!tok) return tok.error();
    for (tokenizer::TokenId id : tok->stop_token_ids) AddStop(&text.stop_token_ids, id);
    tok->stop_token_ids = text.stop_token_ids;
    tok->source = model_name;
    text.tokenizer = std::move(tok).value();
    return text;
  }
  std::optional<std::string> tokenizer_json = read_file("tokenizer.json");
  if (!tokenizer_json) return text;
  Result<tokenizer::Tokenizer> tok = tokenizer::LoadTokenizerJson(*tokenizer_json);
  if (!tok.has_value()) return tok.error().WithContext(model_name + ": tokenizer.json");
  tokenizer::ModelTokenizer m{std::move(tok).value(), std::nullopt, "", "", false, {}, model_name};
  m.bos_token = tc.contains("bos_token") ? TokenString(tc["bos_token"]) : "";
  m.eos_token = tc.contains("eos_token") ? TokenString(tc["eos_token"]) : "";
  m.add_bos_token = tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean() ? tc["add_bos_token"].get<bool>()
                                                                                      : !m.tokenizer.prefix_ids().empty();
  // chat_template.jinja wins over tokenizer_config.json's template (transformers >= 4.43).
  std::string source = read_file("chat_template.jinja").value_or(*template_source);
  if (!source.empty()) {
    Result<tokenizer::ChatTemplate> parsed = tokenizer::ChatTemplate::Parse(source, m.bos_token, m.eos_token);
    if (!parsed.has_value()) return parsed.error().WithContext(model_name + ": chat template");
    m.chat_template = std::move(parsed).value();
  }
  if (!m.eos_token.empty()) AddStop(&text.stop_token_ids, m.tokenizer.PieceToId(m.eos_token));
  m.stop_token_ids = text.stop_token_ids;
  text.tokenizer = std::move(m);
  return text;
}

namespace {

// A GGUF model's text side is in its metadata: tokenizer.ggml.*, tokenizer.chat_template and the
// eos/eot ids (tokenizer/model_tokenizer.h reads them, as llama.cpp does).
Result<ModelText> LoadGgufModelText(const LoadedModel& model, const std::string& name) {
  ModelText text;
  text.model_name = name;
  if (!model.gguf()->model().metadata().Has("tokenizer.ggml.tokens")) return text;  // token-id prompts only
  TRY_ASSIGN(tokenizer::ModelTokenizer tokenizer, tokenizer::LoadModelTokenizer(model.gguf()->path()));
  text.stop_token_ids = tokenizer.stop_token_ids;
  text.tokenizer = std::move(tokenizer);
  return text;
}

}  // namespace

Result<ModelText> LoadModelText(const LoadedModel& model) {
  const std::string name = std::filesystem::path(model.source()).filename().string();
  if (model.gguf()) return LoadGgufModelText(model, name.empty() ? model.source() : name);
  return LoadModelText([&](const std::string& file) { return model.SourceFile(file); },
                       name.empty() ? model.source() : name);
}

Result<std::vector<int32_t>> EncodeChat(const tokenizer::ModelTokenizer& tokenizer, const nlohmann::ordered_json& messages) {
  if (!tokenizer.chat_template) {
    return Error(ErrorCode::kNotFound, tokenizer.source +
                                           " has no chat template (chat_template.jinja or tokenizer_config.json "
                                           "\"chat_template\"); use --no-chat-template for a plain prompt");
  }
  tokenizer::ChatRequest request;
  request.messages = messages;
  request.add_generation_prompt = true;
  TRY_ASSIGN(std::string rendered, tokenizer.chat_template->Render(request));
  return tokenizer.tokenizer.Encode(rendered, {.add_special_tokens = false});
}

std::vector<int32_t> EncodePlain(const tokenizer::ModelTokenizer& tokenizer, const std::string& text) {
  return tokenizer.tokenizer.Encode(text, {.add_special_tokens = tokenizer.add_bos_token});
}

}  // namespace kiln
