// A tool call's arguments as a JSON Schema (object, enum, integer range, array, nested object,
// date): the realistic schema the constraint benchmarks measure masks and decoding with.
#pragma once

namespace kiln {

inline constexpr char kToolCallSchema[] = R"({"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 64},
    "unit": {"enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer", "minimum": 1, "maximum": 14},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
    "location": {"type": "object", "properties": {
        "city": {"type": "string"}, "country": {"type": "string"},
        "lat": {"type": "number"}, "lon": {"type": "number"}},
      "required": ["city", "country"]},
    "start": {"type": "string", "format": "date"},
    "verbose": {"type": "boolean"}},
  "required": ["name", "unit", "days", "location"]})";

}  // namespace kiln
