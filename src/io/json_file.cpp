#include "io/json_file.h"

#include <set>
#include <vector>

#include "core/mapped_file.h"

namespace kiln {

namespace {

// Walks the document as events, with the keys seen so far in each open object.
class DuplicateKeyFinder : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::string duplicate;  // the first key found twice in one object

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& key) override {
    if (keys_.back().insert(key).second) return true;
    duplicate = key;
    return false;  // stop here
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  std::vector<std::set<std::string>> keys_;
};

}  // namespace

Status RejectDuplicateKeys(std::string_view text, const std::string& what) {
  DuplicateKeyFinder finder;
  nlohmann::json::sax_parse(text.begin(), text.end(), &finder, nlohmann::json::input_format_t::json, /*strict=*/true);
  if (finder.duplicate.empty()) return Status::Ok();
  return Error(ErrorCode::kMalformed, what + " has the key \"" + finder.duplicate + "\" twice in one object");
}

Result<nlohmann::json> ParseJson(const std::string& text, const std::string& what) {
  TRY(RejectDuplicateKeys(text, what));
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Error(ErrorCode::kMalformed, what + " is not valid JSON");
  return value;
}

Result<nlohmann::json> ReadJsonFile(const std::string& path) {
  TRY_ASSIGN(std::string text, ReadTextFile(path));
  return ParseJson(text, path);
}

}  // namespace kiln
