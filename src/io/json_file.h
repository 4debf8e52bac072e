// JSON documents from files, parsed without exceptions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kiln {

// kNotFound if missing; kMalformed (with the path) if it is not valid JSON or an object has a
// key twice (parsers disagree on which value wins, so kiln refuses to guess).
Result<nlohmann::json> ReadJsonFile(const std::string& path);
// Parses `text`; `what` names it in the error.
Result<nlohmann::json> ParseJson(const std::string& text, const std::string& what);
// kMalformed naming the key and `what` when an object in the (valid) JSON `text` holds a key
// twice; OK otherwise, and for text that is not JSON (the parser says that).
Status RejectDuplicateKeys(std::string_view text, const std::string& what);

}  // namespace kiln
