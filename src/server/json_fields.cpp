#include "server/json_fields.h"

namespace kiln::server {

using nlohmann::json;

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

std::string Shown(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return text;
}

Result<json> ParseObject(std::string_view body) {
  json root = json::parse(body.begin(), body.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid("the request body is not valid JSON");
  if (!root.is_object()) return Invalid("the request body must be a JSON object, got " + Shown(root));
  return root;
}

const json* Field(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<bool> BoolField(const json& root, const char* name, bool fallback) {
  const json* value = Field(root, name);
  if (!value) return fallback;
  if (!value->is_boolean()) return Invalid(std::string("'") + name + "' must be a boolean, got " + Shown(*value));
  return value->get<bool>();
}

Result<int64_t> IntField(const json* value, const char* name, int64_t low, int64_t high) {
  if (!value->is_number_integer() || (value->is_number_unsigned() && value->get<uint64_t>() > static_cast<uint64_t>(high)) ||
      value->get<int64_t>() < low || value->get<int64_t>() > high) {
    return Invalid(std::string("'") + name + "' must be an integer in [" + std::to_string(low) + ", " +
                   std::to_string(high) + "], got " + Shown(*value));
  }
  return value->get<int64_t>();
}

Result<float> NumberField(const json* value, const char* name, double low, double high, bool low_open) {
  auto range = [&] {
    return std::string(low_open ? "(" : "[") + json(low).dump() + ", " + json(high).dump() + "]";
  };
  if (!value->is_number()) return Invalid(std::string("'") + name + "' must be a number in " + range() + ", got " + Shown(*value));
  const double number = value->get<double>();
  if (!(number <= high) || (low_open ? !(number > low) : !(number >= low))) {
    return Invalid(std::string("'") + name + "' must be in " + range() + ", got " + Shown(*value));
  }
  return static_cast<float>(number);
}

std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace kiln::server
