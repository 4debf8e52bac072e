// JSON documents from files, parsed without exceptions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"

namespace kiln {

// kNotFound if missing; kMalformed (with the path) if it is not valid JSON.
Result<nlohmann::json> ReadJsonFile(const std::string& path);
// Parses `text`; `what` names it in the error.
Result<nlohmann::json> ParseJson(const std::string& text, const std::string& what);

}  // namespace kiln
