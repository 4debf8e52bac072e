#include "tokenizer/tokenizer_json.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "tokenizer/json_scanner.h"

namespace kiln::tokenizer {
namespace {

using nlohmann::json;

constexpr int64_t kMaxTokenId = (1 << 24) - 1;

Error Unsupported(const std::string& what) {
  return Error(ErrorCode::kUnsupported, "tokenizer.json: " + what + " is not supported");
}
Error Malformed(const std::string& what) { return Error(ErrorCode::kMalformed, "tokenizer.json: " + what); }

std::string TypeOf(const json& j) { return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : ""; }

std::string StringField(const json& j, const char* key, const std::string& fallback = "") {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}
bool BoolField(const json& j, const char* key, bool fallback) {
  return j.is_object() && j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

// A {"String": s} or {"Regex": r} pattern.
struct Pattern {
  std::string text;
  bool is_regex = false;
};
Result<Pattern> ParsePattern(const json& j, const std::string& where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) return Pattern{j["String"].get<std::string>(), false};
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) return Pattern{j["Regex"].get<std::string>(), true};
  return Malformed(where + " pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

Status ParseNormalizer(const json& j, Normalizer* out) {
  if (j.is_null()) return Status::Ok();
  const std::string type = TypeOf(j);
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) return Malformed("normalizer Sequence without a list");
    for (const json& n : j["normalizers"]) TRY(ParseNormalizer(n, out));
    return Status::Ok();
  }
  NormalizerStep step;
  if (type == "NFC") {
    step.kind = NormalizerKind::kNfc;
  } else if (type == "NFD") {
    step.kind = NormalizerKind::kNfd;
  } else if (type == "Replace") {
    TRY_ASSIGN(Pattern p, ParsePattern(j.value("pattern", json()), "normalizer Replace"));
    if (p.is_regex) return Unsupported("normalizer Replace with a Regex pattern");
    step.kind = NormalizerKind::kReplace;
    step.pattern = p.text;
    step.content = StringField(j, "content");
  } else if (type == "Prepend") {
    step.kind = NormalizerKind::kPrepend;
    step.content = StringField(j, "prepend");
  } else if (type == "Lowercase") {
    step.kind = NormalizerKind::kLowercase;
  } else if (type == "Strip") {
    step.kind = NormalizerKind::kStrip;
    step.strip_left = BoolField(j, "strip_left", false);
    step.strip_right = BoolField(j, "strip_right", false);
  } else {
    return Unsupported("normalizer type '" + type + "'");
  }
  out->steps.push_back(std::move(step));
  return Status::Ok();
}

Result<SplitBehavior> ParseBehavior(const std::string& name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return Unsupported("split behavior '" + name + "'");
}

Status ParsePreTokenizer(const json& j, PreTokenizer* out) {
  if (j.is_null()) return Status::Ok();
  const std::string type = TypeOf(j);
  PreTokenizerStep step;
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) return Malformed("pre_tokenizer Sequence without a list");
    for (const json& p : j["pretokenizers"]) TRY(ParsePreTokenizer(p, out));
    return Status::Ok();
  } else if (type == "Split") {
    TRY_ASSIGN(Pattern p, ParsePattern(j.value("pattern", json()), "pre_tokenizer Split"));
    step.kind = PreTokenizerKind::kSplit;
    if (p.is_regex) {
      TRY_ASSIGN(step.regex, Regex::Compile(p.text));
    } else {
      step.literal = p.text;
    }
    TRY_ASSIGN(step.behavior, ParseBehavior(StringField(j, "behavior", "Isolated")));
    step.invert = BoolField(j, "invert", false);
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerKind::kByteLevel;
    step.add_prefix_space = BoolField(j, "add_prefix_space", true);
    if (BoolField(j, "use_regex", true)) {
      TRY_ASSIGN(step.regex, Regex::Compile(kGpt2SplitPattern));
    }
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerKind::kMetaspace;
    step.replacement = StringField(j, "replacement", "\xE2\x96\x81");
    const std::string scheme = StringField(j, "prepend_scheme", BoolField(j, "add_prefix_space", true) ? "always" : "never");
    step.prepend_scheme = scheme == "first" ? PrependScheme::kFirst : scheme == "never" ? PrependScheme::kNever : PrependScheme::kAlways;
    step.split = BoolField(j, "split", true);
  } else {
    return Unsupported("pre_tokenizer type '" + type + "'");
  }
  out->steps.push_back(std::move(step));
  return Status::Ok();
}

Status ParseDecoder(const json& j, Decoder* out) {
  if (j.is_null()) return Status::Ok();
  const std::string type = TypeOf(j);
  DecoderStep step;
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array()) return Malformed("decoder Sequence without a list");
    for (const json& d : j["decoders"]) TRY(ParseDecoder(d, out));
    return Status::Ok();
  } else if (type == "Replace") {
    TRY_ASSIGN(Pattern p, ParsePattern(j.value("pattern", json()), "decoder Replace"));
    if (p.is_regex) return Unsupported("decoder Replace with a Regex pattern");
    step.kind = DecoderKind::kReplace;
    step.pattern = p.text;
    step.content = StringField(j, "content");
  } else if (type == "ByteFallback") {
    step.kind = DecoderKind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderKind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderKind::kStrip;
    step.content = StringField(j, "content", " ");
    step.strip_start = j.value("start", 0);
    step.strip_stop = j.value("stop", 0);
  } else if (type == "ByteLevel") {
    step.kind = DecoderKind::kByteLevel;
  } else if (type == "Metaspace") {
    step.kind = DecoderKind::kMetaspace;
    step.replacement = StringField(j, "replacement", "\xE2\x96\x81");
    step.prepend = StringField(j, "prepend_scheme", BoolField(j, "add_prefix_space", true) ? "always" : "never") != "never";
  } else {
    return Unsupported("decoder type '" + type + "'");
  }
  out->steps.push_back(std::move(step));
  return Status::Ok();
}

// Looks up a special token of the post-processor by its string.
Result<TokenId> SpecialId(const json& entry, const std::string& where) {
  // [token, id] (Bert/Roberta) or {"ids": [...]} (TemplateProcessing special_tokens).
  if (entry.is_array() && entry.size() == 2 && entry[1].is_number_integer()) return entry[1].get<TokenId>();
  return Malformed(where + " has a malformed special token");
}

Status ParsePostProcessor(const json& j, TokenizerSpec* spec) {
  if (j.is_null()) return Status::Ok();
  const std::string type = TypeOf(j);
  if (type == "ByteLevel") return Status::Ok();  // offsets only
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) return Malformed("post_processor Sequence without a list");
    for (const json& p : j["processors"]) TRY(ParsePostProcessor(p, spec));
    return Status::Ok();
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    TRY_ASSIGN(TokenId cls, SpecialId(j.value("cls", json()), type));
    TRY_ASSIGN(TokenId sep, SpecialId(j.value("sep", json()), type));
    spec->prefix_ids = {cls};
    spec->suffix_ids = {sep};
    return Status::Ok();
  }
  if (type != "TemplateProcessing") return Unsupported("post_processor type '" + type + "'");
  if (!j.contains("single") || !j["single"].is_array()) return Malformed("TemplateProcessing without 'single'");
  const json specials = j.value("special_tokens", json::object());
  bool seen_sequence = false;
  spec->prefix_ids.clear();
  spec->suffix_ids.clear();
  for (const json& piece : j["single"]) {
    if (piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    const std::string name = piece.contains("SpecialToken") ? StringField(piece["SpecialToken"], "id") : "";
    if (name.empty() || !specials.is_object() || !specials.contains(name) || !specials[name].contains("ids") ||
        !specials[name]["ids"].is_array()) {
      return Malformed("TemplateProcessing refers to unknown special token '" + name + "'");
    }
    for (const json& id : specials[name]["ids"]) {
      if (!id.is_number_integer()) return Malformed("TemplateProcessing id is not an integer");
      (seen_sequence ? spec->suffix_ids : spec->prefix_ids).push_back(id.get<TokenId>());
    }
  }
  return Status::Ok();
}

Status ParseAddedTokens(const json& j, TokenizerSpec* spec) {
  if (j.is_null()) return Status::Ok();
  if (!j.is_array()) return Malformed("added_tokens is not a list");
  for (const json& t : j) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") || !t["content"].is_string()) {
      return Malformed("added token without integer 'id' and string 'content'");
    }
    AddedToken token;
    const int64_t id = t["id"].get<int64_t>();
    if (id < 0 || id > kMaxTokenId) return Malformed("added token id " + std::to_string(id) + " out of range");
    token.id = static_cast<TokenId>(id);
    token.content = t["content"].get<std::string>();
    token.special = BoolField(t, "special", false);
    token.single_word = BoolField(t, "single_word", false);
    token.lstrip = BoolField(t, "lstrip", false);
    token.rstrip = BoolField(t, "rstrip", false);
    token.normalized = BoolField(t, "normalized", !token.special);
    spec->added_tokens.push_back(std::move(token));
  }
  return Status::Ok();
}

Status ScanVocab(JsonScanner* s, std::vector<std::string>* pieces) {
  TRY(s->Expect('{'));
  if (s->TryConsume('}')) return Status::Ok();
  // Real files list ids 0, 1, 2, ... in order: append directly; otherwise place by id.
  std::vector<bool> seen;
  std::string piece;
  while (true) {
    piece.clear();
    TRY(s->AppendString(&piece));
    TRY(s->Expect(':'));
    TRY_ASSIGN(int64_t id, s->Integer(0, kMaxTokenId));
    if (piece.empty()) return Malformed("model.vocab has an empty token");
    const auto index = static_cast<size_t>(id);
    if (index >= pieces->size()) {
      pieces->resize(index + 1);
      seen.resize(index + 1, false);
    }
    if (seen[index]) return Malformed("model.vocab gives id " + std::to_string(id) + " twice");
    seen[index] = true;
    (*pieces)[index] = piece;
    TRY_ASSIGN(bool more, s->NextElement('}'));
    if (!more) return Status::Ok();
  }
}

Status ScanMerges(JsonScanner* s, MergeList* merges) {
  TRY(s->Expect('['));
  if (s->TryConsume(']')) return Status::Ok();
  std::string* data = merges->buffer();
  while (true) {
    if (data->size() > (size_t{1} << 31)) return Malformed("merges exceed 2 GiB");
    const size_t start = data->size();
    if (s->Peek() == '[') {
      TRY(s->Expect('['));
      TRY(s->AppendString(data));
      const auto left_end = static_cast<uint32_t>(data->size());
      TRY(s->Expect(','));
      TRY(s->AppendString(data));
      TRY(s->Expect(']'));
      merges->Commit(left_end, left_end);
    } else {
      TRY(s->AppendString(data));
      const size_t space = data->find(' ', start + 1);
      if (space == std::string::npos) {
        return Malformed("merge '" + data->substr(start) + "' is not two tokens separated by a space");
      }
      merges->Commit(static_cast<uint32_t>(space), static_cast<uint32_t>(space + 1));
    }
    TRY_ASSIGN(bool more, s->NextElement(']'));
    if (!more) return Status::Ok();
  }
}

Result<json> ParseSmall(std::string_view raw, const std::string& key) {
  json j = json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Malformed("'" + key + "' is not valid JSON");
  return j;
}

Result<Tokenizer> LoadImpl(std::string_view text) {
  TokenizerSpec spec;
  json normalizer, pre_tokenizer, post_processor, decoder, added_tokens;
  json model_fields = json::object();
  bool have_model = false, have_vocab = false;
  JsonScanner s(text);
  TRY(s.Expect('{'));
  bool more = !s.TryConsume('}');
  // A key given twice would let a later value silently replace (or, for the vocabulary, be
  // scanned on top of) an earlier one: refused, as in every JSON file kiln did not write.
  std::set<std::string> keys, model_keys;
  while (more) {
    TRY_ASSIGN(std::string key, s.String());
    TRY(s.Expect(':'));
    if (!keys.insert(key).second) return s.MakeError("duplicate key \"" + key + "\"");
    if (key == "model" && s.Peek() == '{') {
      have_model = true;
      TRY(s.Expect('{'));
      bool more_model = !s.TryConsume('}');
      while (more_model) {
        TRY_ASSIGN(std::string field, s.String());
        TRY(s.Expect(':'));
        if (!model_keys.insert(field).second) return s.MakeError("duplicate key \"model." + field + "\"");
        if (field == "vocab" && s.Peek() == '{') {
          TRY(ScanVocab(&s, &spec.pieces));
          have_vocab = true;
        } else if (field == "merges" && s.Peek() == '[') {
          spec.merges.Reserve(spec.pieces.size() * 2, spec.pieces.size() * 24);  // ~2 merges per token
          TRY(ScanMerges(&s, &spec.merges));
        } else {
          TRY_ASSIGN(std::string_view raw, s.RawValue());
          TRY_ASSIGN(model_fields[field], ParseSmall(raw, "model." + field));
        }
        TRY_ASSIGN(more_model, s.NextElement('}'));
      }
    } else {
      TRY_ASSIGN(std::string_view raw, s.RawValue());
      TRY_ASSIGN(json value, ParseSmall(raw, key));
      if (key == "normalizer") normalizer = std::move(value);
      if (key == "pre_tokenizer") pre_tokenizer = std::move(value);
      if (key == "post_processor") post_processor = std::move(value);
      if (key == "decoder") decoder = std::move(value);
      if (key == "added_tokens") added_tokens = std::move(value);
    }
    TRY_ASSIGN(more, s.NextElement('}'));
  }
  if (s.Peek() != '\0') return s.MakeError("trailing characters after the top-level object");
  if (!have_model || !have_vocab) return Malformed("no model.vocab object");

  const std::string model_type = StringField(model_fields, "type", "BPE");
  if (model_type != "BPE") return Unsupported("model type '" + model_type + "' (only BPE)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!StringField(model_fields, key).empty()) return Unsupported(std::string("model.") + key);
  }
  if (model_fields.contains("dropout") && model_fields["dropout"].is_number() && model_fields["dropout"].get<double>() > 0) {
    return Unsupported("BPE dropout");
  }
  spec.bpe_options.byte_fallback = BoolField(model_fields, "byte_fallback", false);
  spec.bpe_options.fuse_unk = BoolField(model_fields, "fuse_unk", false);
  spec.bpe_options.ignore_merges = BoolField(model_fields, "ignore_merges", false);

  TRY(ParseNormalizer(normalizer, &spec.normalizer));
  TRY(ParsePreTokenizer(pre_tokenizer, &spec.pre_tokenizer));
  TRY(ParseDecoder(decoder, &spec.decoder));
  TRY(ParseAddedTokens(added_tokens, &spec));
  TRY(ParsePostProcessor(post_processor, &spec));

  if (const std::string unk = StringField(model_fields, "unk_token"); !unk.empty()) {
    for (size_t id = 0; id < spec.pieces.size(); ++id) {
      if (spec.pieces[id] == unk) spec.bpe_options.unk_id = static_cast<TokenId>(id);
    }
    for (const AddedToken& t : spec.added_tokens) {
      if (!spec.bpe_options.unk_id && t.content == unk) spec.bpe_options.unk_id = t.id;
    }
  }
  spec.description = "tokenizer.json BPE" + std::string(spec.pre_tokenizer.HasByteLevel() ? " (byte-level)" : "") +
                     (spec.bpe_options.byte_fallback ? " (byte fallback)" : "") + ", " +
                     std::to_string(spec.pieces.size()) + " pieces, " + std::to_string(spec.merges.size()) + " merges, " +
                     std::to_string(spec.added_tokens.size()) + " added tokens";
  return Tokenizer::Create(std::move(spec));
}

}  // namespace

Result<std::string> ReadFileToString(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return Error(ErrorCode::kNotFound, path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(ErrorCode::kIo, path + ": cannot open");
  std::string data;
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0) return Error(ErrorCode::kIo, path + ": cannot read size");
  data.resize(static_cast<size_t>(size));
  in.seekg(0);
  in.read(data.data(), size);
  if (!in) return Error(ErrorCode::kIo, path + ": read failed");
  return data;
}

Result<Tokenizer> LoadTokenizerJson(std::string_view json_text) {
  // nlohmann::json throws type_error on a wrong-typed access; none is expected after the checks
  // above, but untrusted files must never escape as exceptions.
  try {
    return LoadImpl(json_text);
  } catch (const std::exception& e) {
    return Malformed(e.what());
  }
}

Result<Tokenizer> LoadTokenizerJsonFile(const std::string& path) {
  // Map the file rather than copy it: real files are tens of MB and only scanned once.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat info {};
  if (fd >= 0 && ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_size > 0) {
    const auto size = static_cast<size_t>(info.st_size);
    void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    ::close(fd);
    if (mapped != MAP_FAILED) {
      Result<Tokenizer> tok = LoadTokenizerJson(std::string_view(static_cast<const char*>(mapped), size));
      ::munmap(mapped, size);
      if (!tok.has_value()) return tok.error().WithContext(path);
      return tok;
    }
  } else if (fd >= 0) {
    ::close(fd);
  }
  TRY_ASSIGN(std::string text, ReadFileToString(path));
  Result<Tokenizer> tok = LoadTokenizerJson(text);
  if (!tok.has_value()) return tok.error().WithContext(path);
  return tok;
}

}  // namespace kiln::tokenizer
