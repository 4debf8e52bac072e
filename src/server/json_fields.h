// Reading fields of a client's JSON body, for the request parsers (OpenAI's and Ollama's): each
// reader type-checks and range-checks one field and names it in its error ("'temperature' must
// be a number in [0.0, 2.0], got \"hot\""). Every error is kInvalidArgument. Never throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kiln/status.h"

namespace kiln::server {

Error Invalid(const std::string& message);
// A short rendering of a bad value for messages (bounded: the value came from the client).
std::string Shown(const nlohmann::json& value);
// The body as a JSON object.
Result<nlohmann::json> ParseObject(std::string_view body);
// An optional field; null counts as absent (clients send "stop": null and the like).
const nlohmann::json* Field(const nlohmann::json& object, const char* name);
Result<bool> BoolField(const nlohmann::json& object, const char* name, bool fallback);
// An integer in [low, high]; a float, even an integral one (64.0), is refused.
Result<int64_t> IntField(const nlohmann::json* value, const char* name, int64_t low, int64_t high);
// A number in [low, high] ((low, high] when low_open).
Result<float> NumberField(const nlohmann::json* value, const char* name, double low, double high, bool low_open);
// Dumps without throwing on invalid UTF-8 (replaced by U+FFFD).
std::string Dump(const nlohmann::json& value);

}  // namespace kiln::server
