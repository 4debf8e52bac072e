#include "tokenize_command.h"

#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/model_tokenizer.h"

namespace {

using kiln::tokenizer::TokenId;

constexpr char kTokenizeUsage[] =
    "usage: kiln tokenize MODEL TEXT [--ids-only] [--chat] [--no-add-special] [--no-parse-special]\n"
    "  MODEL  directory with tokenizer.json, or a .gguf file\n"
    "  TEXT   text to tokenize; '-' reads standard input\n"
    "  --ids-only          print only the ids, space-separated on one line\n"
    "  --chat              apply the model's chat template (TEXT: a user message or a JSON message list)\n"
    "  --no-add-special    do not add the model's <bos>-style tokens\n"
    "  --no-parse-special  treat special-token strings in TEXT as plain text\n";
constexpr char kDetokenizeUsage[] =
    "usage: kiln detokenize MODEL ID... [--skip-special]\n"
    "  MODEL  directory with tokenizer.json, or a .gguf file\n"
    "  ID     token ids (separate arguments, or one argument separated by spaces or commas)\n"
    "  --skip-special  leave out special tokens\n";

int Fail(const char* command, const std::string& message, int code) {
  std::fprintf(stderr, "kiln %s: %s\n", command, message.c_str());
  return code;
}

std::string Quote(std::string_view piece) {
  return nlohmann::json(std::string(piece)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

int RunTokenizeCommand(int argc, char** argv, const TokenizerLoader& load) {
  const char* kName = "tokenize";
  bool ids_only = false, chat = false, add_special = true, parse_special = true;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--ids-only") {
      ids_only = true;
    } else if (arg == "--chat") {
      chat = true;
    } else if (arg == "--no-add-special") {
      add_special = false;
    } else if (arg == "--no-parse-special") {
      parse_special = false;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kTokenizeUsage, stdout);
      return 0;
    } else if (arg.size() > 2 && arg.rfind("--", 0) == 0) {
      std::fputs(kTokenizeUsage, stderr);
      return Fail(kName, "unknown option '" + arg + "'", 2);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    std::fputs(kTokenizeUsage, stderr);
    return Fail(kName, "expected MODEL and TEXT", 2);
  }
  std::string text = positional[1];
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());

  kiln::Result<kiln::tokenizer::ModelTokenizer> model = load(positional[0]);
  if (!model.has_value()) return Fail(kName, model.error().ToString(), 1);

  kiln::tokenizer::EncodeOptions options{.add_special_tokens = add_special && model->add_bos_token,
                                         .parse_special = parse_special};
  if (chat) {
    if (!model->chat_template.has_value()) return Fail(kName, positional[0] + " has no chat template", 1);
    kiln::tokenizer::ChatRequest request;
    nlohmann::ordered_json messages = nlohmann::ordered_json::parse(text, nullptr, false);
    if (!messages.is_discarded() && messages.is_array()) {
      request.messages = std::move(messages);
    } else {
      request.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", text}}});
    }
    kiln::Result<std::string> rendered = model->chat_template->Render(request);
    if (!rendered.has_value()) return Fail(kName, rendered.error().ToString(), 1);
    text = std::move(rendered).value();
    options.add_special_tokens = false;  // the template writes <bos> itself
    options.parse_special = true;        // its control tokens are real
  }
  const std::vector<TokenId> ids = model->tokenizer.Encode(text, options);
  std::string out;
  if (ids_only) {
    for (size_t i = 0; i < ids.size(); ++i) out += (i > 0 ? " " : "") + std::to_string(ids[i]);
    out += '\n';
  } else {
    for (TokenId id : ids) out += std::to_string(id) + "\t" + Quote(model->tokenizer.IdToPiece(id)) + "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int RunDetokenizeCommand(int argc, char** argv, const TokenizerLoader& load) {
  const char* kName = "detokenize";
  bool skip_special = false;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--skip-special") {
      skip_special = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kDetokenizeUsage, stdout);
      return 0;
    } else if (arg.size() > 2 && arg.rfind("--", 0) == 0) {
      std::fputs(kDetokenizeUsage, stderr);
      return Fail(kName, "unknown option '" + arg + "'", 2);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2) {
    std::fputs(kDetokenizeUsage, stderr);
    return Fail(kName, "expected MODEL and at least one ID", 2);
  }
  std::vector<long long> raw_ids;
  for (size_t i = 1; i < positional.size(); ++i) {
    std::string field = positional[i];
    for (char& c : field) {
      if (c == ',') c = ' ';
    }
    std::istringstream in(field);
    for (std::string word; in >> word;) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(word, &used);
      } catch (...) {
        used = 0;
      }
      if (used != word.size()) return Fail(kName, "'" + word + "' is not a token id", 2);
      raw_ids.push_back(id);
    }
  }
  kiln::Result<kiln::tokenizer::ModelTokenizer> model = load(positional[0]);
  if (!model.has_value()) return Fail(kName, model.error().ToString(), 1);
  std::vector<TokenId> ids;
  const auto vocab_size = static_cast<long long>(model->tokenizer.vocab_size());
  for (long long id : raw_ids) {
    if (id < 0 || id >= vocab_size || model->tokenizer.IdToPiece(static_cast<TokenId>(id)).empty()) {
      return Fail(kName, "token id " + std::to_string(id) + " is not in the vocabulary (size " + std::to_string(vocab_size) + ")", 1);
    }
    ids.push_back(static_cast<TokenId>(id));
  }
  std::string text = model->tokenizer.Decode(ids, skip_special);
  text += '\n';
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
