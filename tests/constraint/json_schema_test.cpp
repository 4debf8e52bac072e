// JSON Schema front end: each supported keyword with documents that must and must not match,
// and refusals (unsupported keywords by name, with the schema location).
#include <gtest/gtest.h>

#include "test_util.h"

namespace kiln::constraint {
namespace {

using testing::ErrorOf;
using testing::Matches;
using testing::MustCompile;

TEST(JsonSchema, ObjectPropertiesInOrderWithRequired) {
  auto g = MustCompile(CompileJsonSchema(R"({
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "ok": {"type": "boolean"}},
    "required": ["name"]})"));
  EXPECT_TRUE(Matches(g, R"({"name": "Ann", "age": 41, "ok": true})"));
  EXPECT_TRUE(Matches(g, R"({"name":"Ann"})"));
  EXPECT_TRUE(Matches(g, R"({"name": "Ann", "ok": false})"));
  EXPECT_TRUE(Matches(g, "{\n  \"name\": \"Ann\",\n  \"age\": 3\n}\n"));
  EXPECT_FALSE(Matches(g, R"({"age": 41})"));                 // name is required
  EXPECT_FALSE(Matches(g, R"({"age": 41, "name": "Ann"})"));  // schema order
  EXPECT_FALSE(Matches(g, R"({"name": "Ann", "extra": 1})"));  // no additional properties
  EXPECT_FALSE(Matches(g, R"({"name": "Ann", "age": 4.5})"));
  EXPECT_FALSE(Matches(g, R"({"name": "Ann",})"));
}

TEST(JsonSchema, AllOptionalAndAdditionalProperties) {
  auto g = MustCompile(CompileJsonSchema(R"({"properties": {"a": {"type": "null"}},
                                             "additionalProperties": {"type": "integer"}})"));
  EXPECT_TRUE(Matches(g, "{}"));
  EXPECT_TRUE(Matches(g, R"({"a": null})"));
  EXPECT_TRUE(Matches(g, R"({"a": null, "x": 1, "y": 2})"));
  EXPECT_TRUE(Matches(g, R"({"x": 1})"));
  EXPECT_FALSE(Matches(g, R"({"x": "s"})"));
  auto open = MustCompile(CompileJsonSchema(R"({"type": "object"})"));
  EXPECT_TRUE(Matches(open, R"({"any": [1, {"b": null}]})"));
  EXPECT_FALSE(Matches(open, "[]"));
}

TEST(JsonSchema, WhitespaceIsBounded) {
  auto g = MustCompile(CompileJsonSchema(R"({"type": "array"})"));
  EXPECT_TRUE(Matches(g, "[" + std::string(20, ' ') + "1]"));
  EXPECT_FALSE(Matches(g, "[" + std::string(21, ' ') + "1]"));
}

TEST(JsonSchema, ScalarsEnumConstAndTypeLists) {
  auto e = MustCompile(CompileJsonSchema(R"({"enum": ["red", 2, null, {"k": [true]}]})"));
  EXPECT_TRUE(Matches(e, R"("red")"));
  EXPECT_TRUE(Matches(e, "2"));
  EXPECT_TRUE(Matches(e, "null"));
  EXPECT_TRUE(Matches(e, R"({"k":[true]})"));
  EXPECT_FALSE(Matches(e, R"("blue")"));
  auto c = MustCompile(CompileJsonSchema(R"({"const": "x\"y"})"));
  EXPECT_TRUE(Matches(c, R"("x\"y")"));
  EXPECT_FALSE(Matches(c, R"("xy")"));
  auto t = MustCompile(CompileJsonSchema(R"({"type": ["number", "null"]})"));
  EXPECT_TRUE(Matches(t, "-1.5e3"));
  EXPECT_TRUE(Matches(t, "null"));
  EXPECT_FALSE(Matches(t, "01"));
  EXPECT_FALSE(Matches(t, "true"));
}

TEST(JsonSchema, IntegerBounds) {
  auto g = MustCompile(CompileJsonSchema(R"({"type": "integer", "minimum": -15, "maximum": 123})"));
  for (int v = -30; v <= 200; ++v) {
    EXPECT_EQ(Matches(g, std::to_string(v)), v >= -15 && v <= 123) << v;
  }
  EXPECT_FALSE(Matches(g, "007"));
  EXPECT_FALSE(Matches(g, "-0"));
  auto ex = MustCompile(CompileJsonSchema(R"({"type": "integer", "exclusiveMinimum": 9, "exclusiveMaximum": 1000})"));
  EXPECT_FALSE(Matches(ex, "9"));
  EXPECT_TRUE(Matches(ex, "10"));
  EXPECT_TRUE(Matches(ex, "999"));
  EXPECT_FALSE(Matches(ex, "1000"));
  auto lower = MustCompile(CompileJsonSchema(R"({"type": "integer", "minimum": 95})"));
  EXPECT_FALSE(Matches(lower, "94"));
  EXPECT_TRUE(Matches(lower, "95"));
  EXPECT_TRUE(Matches(lower, "100000000000"));
  EXPECT_FALSE(Matches(lower, "-100"));
  // 17-digit bounds compile quickly (a fuzzer found the digit-range expansion exponential).
  auto wide = MustCompile(CompileJsonSchema(R"({"type": "integer", "minimum": -98765432109876543, "maximum": 12200412342357470})"));
  EXPECT_TRUE(Matches(wide, "12200412342357470"));
  EXPECT_FALSE(Matches(wide, "12200412342357471"));
  EXPECT_TRUE(Matches(wide, "-98765432109876543"));
  EXPECT_FALSE(Matches(wide, "-98765432109876544"));
  EXPECT_TRUE(Matches(wide, "9999999999999999"));
  auto upper = MustCompile(CompileJsonSchema(R"({"type": "integer", "maximum": -7})"));
  EXPECT_TRUE(Matches(upper, "-7"));
  EXPECT_TRUE(Matches(upper, "-123456"));
  EXPECT_FALSE(Matches(upper, "-6"));
  EXPECT_FALSE(Matches(upper, "0"));
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "integer", "minimum": 5, "maximum": 4})")).find("empty"),
            std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "number", "minimum": 0})")).find("'minimum' on type 'number'"),
            std::string::npos);
}

TEST(JsonSchema, StringLengthsPatternsAndFormats) {
  auto len = MustCompile(CompileJsonSchema(R"({"type": "string", "minLength": 2, "maxLength": 3})"));
  EXPECT_FALSE(Matches(len, R"("a")"));
  EXPECT_TRUE(Matches(len, R"("ab")"));
  EXPECT_TRUE(Matches(len, R"("\n\u00e9x")"));  // escapes count as one character
  EXPECT_TRUE(Matches(len, "\"\xC3\xA9\xC3\xA9\""));
  EXPECT_FALSE(Matches(len, R"("abcd")"));
  auto pat = MustCompile(CompileJsonSchema(R"({"type": "string", "pattern": "^[A-Z]{2}-\\d+$"})"));
  EXPECT_TRUE(Matches(pat, R"("AB-12")"));
  EXPECT_FALSE(Matches(pat, R"("AB-")"));
  auto search = MustCompile(CompileJsonSchema(R"({"type": "string", "pattern": "id[0-9]"})"));
  EXPECT_TRUE(Matches(search, R"("my id7 here")"));  // unanchored: found anywhere
  EXPECT_FALSE(Matches(search, R"("my id here")"));
  EXPECT_FALSE(Matches(search, "\"a\"id1\""));  // a raw quote never appears inside
  auto quote = MustCompile(CompileJsonSchema(R"({"type": "string", "pattern": "^a\"b$"})"));
  EXPECT_TRUE(Matches(quote, R"("a\"b")"));
  auto date = MustCompile(CompileJsonSchema(R"({"type": "string", "format": "date-time"})"));
  EXPECT_TRUE(Matches(date, R"("2024-02-29T13:45:00.123Z")"));
  EXPECT_TRUE(Matches(date, R"("2024-02-29T13:45:00+05:30")"));
  EXPECT_FALSE(Matches(date, R"("2024-13-01T00:00:00Z")"));
  auto uuid = MustCompile(CompileJsonSchema(R"({"format": "uuid"})"));
  EXPECT_TRUE(Matches(uuid, R"("123e4567-e89b-12d3-a456-426614174000")"));
  EXPECT_FALSE(Matches(uuid, R"("123e4567-e89b-12d3-a456-42661417400")"));
  auto email = MustCompile(CompileJsonSchema(R"({"format": "email"})"));
  EXPECT_TRUE(Matches(email, R"("first.last+tag@mail.example.com")"));
  EXPECT_FALSE(Matches(email, R"("no-at-sign.example.com")"));
  auto time = MustCompile(CompileJsonSchema(R"({"format": "time"})"));
  EXPECT_TRUE(Matches(time, R"("23:59:59Z")"));
  EXPECT_FALSE(Matches(time, R"("24:00:00Z")"));
  auto day = MustCompile(CompileJsonSchema(R"({"format": "date"})"));
  EXPECT_TRUE(Matches(day, R"("1999-12-31")"));
  EXPECT_FALSE(Matches(day, R"("1999-12-32")"));
}

TEST(JsonSchema, Arrays) {
  auto g = MustCompile(CompileJsonSchema(R"({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3})"));
  EXPECT_FALSE(Matches(g, "[]"));
  EXPECT_TRUE(Matches(g, "[1]"));
  EXPECT_TRUE(Matches(g, "[1, 2,3]"));
  EXPECT_FALSE(Matches(g, "[1,2,3,4]"));
  EXPECT_FALSE(Matches(g, "[1,\"a\"]"));
  auto tuple = MustCompile(CompileJsonSchema(
      R"({"prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": false, "minItems": 1})"));
  EXPECT_TRUE(Matches(tuple, R"(["a"])"));
  EXPECT_TRUE(Matches(tuple, R"(["a", true])"));
  EXPECT_FALSE(Matches(tuple, "[]"));
  EXPECT_FALSE(Matches(tuple, R"(["a", true, 1])"));
  EXPECT_FALSE(Matches(tuple, R"([true])"));
  auto prefix_then_items = MustCompile(CompileJsonSchema(
      R"({"prefixItems": [{"const": 0}], "items": {"type": "null"}})"));
  EXPECT_TRUE(Matches(prefix_then_items, "[]"));
  EXPECT_TRUE(Matches(prefix_then_items, "[0, null, null]"));
  EXPECT_FALSE(Matches(prefix_then_items, "[null]"));
}

TEST(JsonSchema, AnyOfOneOfAllOf) {
  auto g = MustCompile(CompileJsonSchema(R"({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]})"));
  EXPECT_TRUE(Matches(g, "12"));
  EXPECT_TRUE(Matches(g, R"("a")"));
  EXPECT_FALSE(Matches(g, R"("ab")"));
  auto one = MustCompile(CompileJsonSchema(R"({"oneOf": [{"const": 1}, {"const": 2}]})"));
  EXPECT_TRUE(Matches(one, "2"));
  auto all = MustCompile(CompileJsonSchema(R"({"allOf": [
      {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
      {"properties": {"b": {"type": "string"}}, "required": ["b"]}]})"));
  EXPECT_TRUE(Matches(all, R"({"a": 1, "b": "x"})"));
  EXPECT_FALSE(Matches(all, R"({"a": 1})"));
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"allOf": [{"type": "string"}, {"type": "integer"}]})")).find("disagree on 'type'"),
            std::string::npos);
}

TEST(JsonSchema, RefsAndRecursion) {
  auto g = MustCompile(CompileJsonSchema(R"({
    "$defs": {"node": {"type": "object", "properties": {
        "value": {"type": "integer"},
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["value"]}},
    "$ref": "#/$defs/node"})"));
  EXPECT_TRUE(Matches(g, R"({"value": 1})"));
  EXPECT_TRUE(Matches(g, R"({"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]})"));
  EXPECT_FALSE(Matches(g, R"({"value": 1, "children": [{"children": []}]})"));
  auto legacy = MustCompile(CompileJsonSchema(R"({"definitions": {"x": {"type": "null"}},
                                                  "properties": {"p": {"$ref": "#/definitions/x"}}})"));
  EXPECT_TRUE(Matches(legacy, R"({"p": null})"));
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"$ref": "#/$defs/missing"})")).find("points to nothing"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"$ref": "http://x/y.json"})")).find("only local references"), std::string::npos);
}

TEST(JsonSchema, Refusals) {
  EXPECT_EQ(ErrorOf(CompileJsonSchema(R"({"properties": {"x": {"type": "object", "patternProperties": {}}}})")),
            "unsupported JSON Schema keyword 'patternProperties' at /properties/x");
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "array", "uniqueItems": true})")).find("'uniqueItems'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "string", "format": "uri"})")).find("unsupported format 'uri'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "string", "pattern": "(a)\\1"})")).find("backreferences"),
            std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "string", "pattern": "(a"})")).find("pattern at /pattern"),
            std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "object", "required": ["z"]})")).find("'z'"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema("{\"type\": ")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema("false")).find("never be satisfied"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "strin"})")).find("unknown type 'strin'"), std::string::npos);
  EXPECT_NE(ErrorOf(CompileJsonSchema(R"({"type": "string", "maxLength": 1000000})")).find("above 10000"),
            std::string::npos);
  std::string deep;
  for (int i = 0; i < 300; ++i) deep += R"({"items": )";
  deep += "true" + std::string(300, '}');
  EXPECT_NE(ErrorOf(CompileJsonSchema(deep)).find("nested deeper"), std::string::npos);
  const std::string deep_const = R"({"const": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_NE(ErrorOf(CompileJsonSchema(deep_const)).find("nested deeper"), std::string::npos);
}

TEST(AnyJson, ObjectsOnly) {
  auto g = MustCompile(CompileAnyJson());
  EXPECT_TRUE(Matches(g, R"({"a": [1, 2, {"b": "c"}], "d": -0.5e-3, "e": null})"));
  EXPECT_TRUE(Matches(g, " {} "));
  EXPECT_FALSE(Matches(g, "[1]"));
  EXPECT_FALSE(Matches(g, R"({"a": 01})"));
  EXPECT_FALSE(Matches(g, R"({"a": "\x"})"));
  EXPECT_FALSE(Matches(g, R"({"a": tru})"));
}

}  // namespace
}  // namespace kiln::constraint
