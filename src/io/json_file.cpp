#include "io/json_file.h"

#include "core/mapped_file.h"

namespace kiln {

Result<nlohmann::json> ParseJson(const std::string& text, const std::string& what) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Error(ErrorCode::kMalformed, what + " is not valid JSON");
  return value;
}

Result<nlohmann::json> ReadJsonFile(const std::string& path) {
  TRY_ASSIGN(std::string text, ReadTextFile(path));
  return ParseJson(text, path);
}

}  // namespace kiln
