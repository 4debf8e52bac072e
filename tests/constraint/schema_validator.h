// An independent JSON Schema checker for the constraint tests: it reads the parsed output
// (nlohmann::json) against the schema directly, sharing nothing with the grammar that the
// engine compiles from the schema, so a mask that lets a wrong token through shows up here.
// Covers the keywords json_schema.cpp supports; formats by their own regular expressions.
#pragma once

#include <algorithm>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::constraint::testing {

using Json = nlohmann::ordered_json;

// RFC 3339 date, time, date-time; uuid; email (dot-atom local part); ipv4. Month and day ranges
// are checked apart.
inline const std::map<std::string, std::string>& FormatRegexes() {
  static const std::string date = R"([0-9]{4}-[0-9]{2}-[0-9]{2})";
  static const std::string time = R"(([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))";
  static const std::string octet = R"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))";
  static const std::string atom = R"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)";
  static const std::string label = R"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)";
  static const std::map<std::string, std::string> formats = {
      {"date", date},
      {"time", time},
      {"date-time", date + "[Tt]" + time},
      {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
      {"email", atom + R"((\.)" + atom + ")*@" + label + R"((\.)" + label + ")+"},
      {"ipv4", octet + R"((\.)" + octet + "){3}"},
  };
  return formats;
}

inline std::string Pointer(const std::string& ref) { return ref.substr(1); }

inline size_t CodepointCount(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The JSON Schema subset of json_schema.cpp, checked directly on the parsed value. Properties
// must come in the order of `properties`; without `additionalProperties`, an object with
// `properties` has no others (the engine's documented reading).
inline bool Validate(const Json& s, const Json& v, const Json& root, std::string* why) {
  auto fail = [&](const std::string& what) { *why = what + " for " + v.dump(); return false; };
  if (s.is_boolean()) return s.get<bool>() || fail("schema false");
  if (s.contains("$ref")) return Validate(root.at(Json::json_pointer(Pointer(s["$ref"]))), v, root, why);
  for (const char* key : {"anyOf", "oneOf"}) {
    if (!s.contains(key)) continue;
    for (const Json& sub : s[key]) {
      std::string ignored;
      if (Validate(sub, v, root, &ignored)) return true;
    }
    return fail(std::string("no ") + key + " branch matches");
  }
  if (s.contains("allOf")) {
    // One object schema, as documented: properties united in order, required joined. Each branch
    // alone would refuse the other's properties (no additionalProperties means none).
    Json merged = Json::object();
    for (const Json& sub : s["allOf"]) {
      for (const auto& [key, value] : sub.items()) {
        if (key == "properties") {
          for (const auto& [name, property] : value.items()) merged["properties"][name] = property;
        } else if (key == "required") {
          for (const Json& name : value) merged["required"].push_back(name);
        } else {
          merged[key] = value;
        }
      }
    }
    return Validate(merged, v, root, why);
  }
  if (s.contains("const") && v != s["const"]) return fail("const");
  if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end()) return fail("enum");
  if (s.contains("type")) {
    std::vector<std::string> types;
    if (s["type"].is_string()) types.push_back(s["type"]); else for (const Json& t : s["type"]) types.push_back(t);
    bool ok = false;
    for (const std::string& t : types) {
      ok |= (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
            (t == "string" && v.is_string()) || (t == "integer" && v.is_number_integer()) ||
            (t == "number" && v.is_number()) || (t == "boolean" && v.is_boolean()) ||
            (t == "null" && v.is_null());
    }
    if (!ok) return fail("type");
  }
  if (v.is_object() && s.contains("properties")) {
    const Json& props = s["properties"];
    if (s.contains("required")) {
      for (const Json& r : s["required"]) if (!v.contains(r.get<std::string>())) return fail("required " + r.dump());
    }
    size_t last_index = 0;
    for (const auto& [key, value] : v.items()) {
      size_t index = 0;
      bool listed = false;
      for (const auto& [name, sub] : props.items()) {
        ++index;
        if (name != key) continue;
        listed = true;
        if (index <= last_index) return fail("property order");
        last_index = index;
        if (!Validate(sub, value, root, why)) return false;
      }
      if (listed) continue;
      const Json extra = s.value("additionalProperties", Json(false));
      if (!Validate(extra, value, root, why)) return fail("additional property " + key);
    }
  }
  if (v.is_array()) {
    const size_t n = v.size();
    if (s.contains("minItems") && n < s["minItems"].get<size_t>()) return fail("minItems");
    if (s.contains("maxItems") && n > s["maxItems"].get<size_t>()) return fail("maxItems");
    size_t prefix = 0;
    if (s.contains("prefixItems")) {
      prefix = s["prefixItems"].size();
      for (size_t i = 0; i < std::min(prefix, n); ++i) if (!Validate(s["prefixItems"][i], v[i], root, why)) return false;
    }
    if (s.contains("items")) {
      for (size_t i = prefix; i < n; ++i) if (!Validate(s["items"], v[i], root, why)) return false;
    }
  }
  if (v.is_string()) {
    const std::string str = v.get<std::string>();
    if (s.contains("minLength") && CodepointCount(str) < s["minLength"].get<size_t>()) return fail("minLength");
    if (s.contains("maxLength") && CodepointCount(str) > s["maxLength"].get<size_t>()) return fail("maxLength");
    if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) return fail("pattern");
  }
  if (v.is_string() && s.contains("format")) {
    const std::string str = v.get<std::string>();
    const std::string format = s["format"];
    const auto it = FormatRegexes().find(format);
    if (it == FormatRegexes().end()) return fail("unknown format " + format);
    if (!std::regex_match(str, std::regex(it->second))) return fail("format " + format);
    if (format == "date" || format == "date-time") {
      const int month = std::stoi(str.substr(5, 2)), day = std::stoi(str.substr(8, 2));
      if (month < 1 || month > 12 || day < 1 || day > 31) return fail("date out of range");
    }
  }
  if (v.is_number()) {
    const double d = v.get<double>();
    if (s.contains("minimum") && d < s["minimum"].get<double>()) return fail("minimum");
    if (s.contains("maximum") && d > s["maximum"].get<double>()) return fail("maximum");
    if (s.contains("exclusiveMinimum") && d <= s["exclusiveMinimum"].get<double>()) return fail("exclusiveMinimum");
    if (s.contains("exclusiveMaximum") && d >= s["exclusiveMaximum"].get<double>()) return fail("exclusiveMaximum");
  }
  return true;
}

}  // namespace kiln::constraint::testing
