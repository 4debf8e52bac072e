// JSON Schema to GrammarSpec. The supported subset and its exact meaning are listed in
// docs/constraints.md; anything that cannot be enforced exactly is refused by name with the JSON
// pointer of the schema where it appears.
#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "constraint/constraint.h"
#include "constraint/json_grammar.h"

namespace kiln::constraint {
namespace {

using Json = nlohmann::ordered_json;

// Keywords that only annotate; they never change what matches.
const std::set<std::string>& AnnotationKeywords() {
  static const std::set<std::string> k = {"title", "description", "$schema", "$id", "$comment",
                                          "default", "examples", "deprecated", "readOnly",
                                          "writeOnly", "$defs", "definitions"};
  return k;
}

const std::set<std::string>& SupportedKeywords() {
  static const std::set<std::string> k = {
      "type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf",
      "properties", "required", "additionalProperties",
      "items", "prefixItems", "minItems", "maxItems", "uniqueItems",
      "minLength", "maxLength", "pattern", "format",
      "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
  return k;
}

int JsonDepth(const Json& j, int limit) {
  if (limit <= 0) return 1;
  int deepest = 0;
  if (j.is_structured()) {
    for (const Json& child : j) deepest = std::max(deepest, JsonDepth(child, limit - 1));
  }
  return deepest + 1;
}

std::string EscapePointer(const std::string& key) {
  std::string out;
  for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  return out;
}

class SchemaCompiler {
 public:
  explicit SchemaCompiler(Json root) : root_(std::move(root)) {}

  Result<GrammarSpec> Run() {
    AddJsonBaseRules(&spec_);
    TRY_ASSIGN(Expr body, Compile(root_, "", 0));
    spec_.rules.push_back({"root", Seq({JsonWs(), std::move(body), JsonWs()})});
    return std::move(spec_);
  }

 private:
  Error Unsupported(const std::string& what, const std::string& path) {
    return Error(ErrorCode::kInvalidArgument, what + " at " + (path.empty() ? "/" : path));
  }

  Result<Expr> Compile(const Json& schema, const std::string& path, int depth) {
    if (depth > kMaxNestingDepth) {
      return Unsupported("schema nested deeper than " + std::to_string(kMaxNestingDepth), path);
    }
    if (schema.is_boolean()) {
      if (schema.get<bool>()) return Ref("json-value");
      return Unsupported("schema 'false' can never be satisfied", path);
    }
    if (!schema.is_object()) return Unsupported("a schema must be an object or a boolean", path);
    bool constrains = false;
    for (const auto& [key, value] : schema.items()) {
      if (AnnotationKeywords().count(key) != 0) continue;
      if (SupportedKeywords().count(key) == 0) {
        return Unsupported("unsupported JSON Schema keyword '" + key + "'", path);
      }
      constrains = true;
    }
    if (!constrains) return Ref("json-value");
    if (schema.contains("$ref")) return CompileRef(schema, path, depth);
    if (schema.contains("allOf")) return CompileAllOf(schema, path, depth);
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!schema.contains(key)) continue;
      // oneOf is enforced as anyOf: exclusivity cannot be checked while generating.
      const Json& subs = schema[key];
      if (!subs.is_array() || subs.empty()) return Unsupported(std::string("'") + key + "' must be a non-empty array", path);
      for (const auto& [k, v] : schema.items()) {
        if (k != key && AnnotationKeywords().count(k) == 0) {
          return Unsupported(std::string("'") + key + "' combined with sibling keyword '" + k + "' is not supported", path);
        }
      }
      std::vector<Expr> alts;
      for (size_t i = 0; i < subs.size(); ++i) {
        TRY_ASSIGN(Expr e, Compile(subs[i], path + "/" + key + "/" + std::to_string(i), depth + 1));
        alts.push_back(std::move(e));
      }
      return Alt(std::move(alts));
    }
    if (schema.contains("const")) return JsonLiteral(schema["const"], path + "/const");
    if (schema.contains("enum")) {
      const Json& values = schema["enum"];
      if (!values.is_array() || values.empty()) return Unsupported("'enum' must be a non-empty array", path);
      std::vector<Expr> alts;
      for (const Json& v : values) {
        TRY_ASSIGN(Expr e, JsonLiteral(v, path + "/enum"));
        alts.push_back(std::move(e));
      }
      return Alt(std::move(alts));
    }
    std::vector<std::string> types;
    if (schema.contains("type")) {
      const Json& t = schema["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const Json& item : t) {
          if (!item.is_string()) return Unsupported("'type' entries must be strings", path);
          types.push_back(item.get<std::string>());
        }
      } else {
        return Unsupported("'type' must be a string or a non-empty array of strings", path);
      }
    } else {
      types = InferTypes(schema);
    }
    std::vector<Expr> alts;
    for (const std::string& type : types) {
      TRY_ASSIGN(Expr e, CompileType(schema, type, path, depth));
      alts.push_back(std::move(e));
    }
    return Alt(std::move(alts));
  }

  static std::vector<std::string> InferTypes(const Json& s) {
    std::vector<std::string> types;
    if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) types.push_back("object");
    if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems")) types.push_back("array");
    if (s.contains("minLength") || s.contains("maxLength") || s.contains("pattern") || s.contains("format")) types.push_back("string");
    if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum")) types.push_back("number");
    if (types.empty()) types = {"object", "array", "string", "number", "boolean", "null"};
    return types;
  }

  Result<Expr> JsonLiteral(const Json& value, const std::string& path) {
    if (JsonDepth(value, kMaxNestingDepth + 1) > kMaxNestingDepth) {
      return Unsupported("value nested deeper than " + std::to_string(kMaxNestingDepth), path);
    }
    // The compact serialization is the only form produced.
    return Lit(value.dump());
  }

  Result<Expr> CompileRef(const Json& schema, const std::string& path, int depth) {
    for (const auto& [k, v] : schema.items()) {
      if (k != "$ref" && AnnotationKeywords().count(k) == 0) {
        return Unsupported("'$ref' with sibling keyword '" + k + "' is not supported", path);
      }
    }
    if (!schema["$ref"].is_string()) return Unsupported("'$ref' must be a string", path);
    const std::string ref = schema["$ref"].get<std::string>();
    if (ref.empty() || ref[0] != '#') {
      return Unsupported("only local references ('#/$defs/...') are supported, not '" + ref + "'", path);
    }
    if (auto it = ref_rules_.find(ref); it != ref_rules_.end()) return Ref(it->second);
    const std::string pointer = ref.substr(1);
    const Json* target = &root_;
    if (!pointer.empty()) {
      Json::json_pointer ptr;
      try {
        ptr = Json::json_pointer(pointer);
      } catch (const nlohmann::json::exception&) {
        return Unsupported("'$ref' '" + ref + "' is not a valid JSON pointer", path);
      }
      if (!root_.contains(ptr)) return Unsupported("'$ref' '" + ref + "' points to nothing", path);
      target = &root_.at(ptr);
    }
    // Registered before compiling the target, so a recursive reference finds the rule.
    const std::string name = "ref-" + std::to_string(ref_rules_.size());
    ref_rules_.emplace(ref, name);
    TRY_ASSIGN(Expr body, Compile(*target, pointer, depth + 1));
    spec_.rules.push_back({name, std::move(body)});
    return Ref(name);
  }

  // allOf is accepted when its subschemas merge key by key without conflict (properties are
  // united, required lists joined); anything else is refused.
  Result<Expr> CompileAllOf(const Json& schema, const std::string& path, int depth) {
    const Json& subs = schema["allOf"];
    if (!subs.is_array() || subs.empty()) return Unsupported("'allOf' must be a non-empty array", path);
    Json merged = schema;
    merged.erase("allOf");
    for (size_t i = 0; i < subs.size(); ++i) {
      const std::string sub_path = path + "/allOf/" + std::to_string(i);
      if (!subs[i].is_object()) return Unsupported("'allOf' entries must be objects", sub_path);
      for (const auto& [key, value] : subs[i].items()) {
        if (key == "$ref" || key == "allOf" || key == "anyOf" || key == "oneOf") {
          return Unsupported("'allOf' with '" + key + "' inside cannot be merged", sub_path);
        }
        if (!merged.contains(key)) {
          merged[key] = value;
        } else if (key == "properties" && value.is_object() && merged[key].is_object()) {
          for (const auto& [name, prop] : value.items()) {
            if (merged[key].contains(name) && merged[key][name] != prop) {
              return Unsupported("'allOf' subschemas disagree on property '" + name + "'", sub_path);
            }
            merged[key][name] = prop;
          }
        } else if (key == "required" && value.is_array() && merged[key].is_array()) {
          for (const Json& r : value) merged[key].push_back(r);
        } else if (merged[key] != value) {
          return Unsupported("'allOf' subschemas disagree on '" + key + "'", sub_path);
        }
      }
    }
    return Compile(merged, path, depth + 1);
  }

  Result<Expr> CompileType(const Json& s, const std::string& type, const std::string& path, int depth) {
    if (type == "null") return Lit("null");
    if (type == "boolean") return Alt({Lit("true"), Lit("false")});
    if (type == "string") return CompileString(s, path);
    if (type == "integer") return CompileInteger(s, path);
    if (type == "number") {
      for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
        if (s.contains(k)) {
          return Unsupported(std::string("'") + k + "' on type 'number' cannot be enforced (only integer bounds are)", path);
        }
      }
      return Ref("json-number");
    }
    if (type == "object") return CompileObject(s, path, depth);
    if (type == "array") return CompileArray(s, path, depth);
    return Unsupported("unknown type '" + type + "'", path);
  }

  Result<std::optional<int64_t>> Bound(const Json& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return std::optional<int64_t>();
    const Json& v = s[key];
    if (!v.is_number()) return Unsupported(std::string("'") + key + "' must be a number", path);
    const double d = v.get<double>();
    if (!(std::fabs(d) < 1e18)) return Unsupported(std::string("'") + key + "' is too large", path);
    return std::optional<int64_t>(static_cast<int64_t>(d));
  }

  Result<Expr> CompileInteger(const Json& s, const std::string& path) {
    std::optional<int64_t> min, max;
    for (const char* key : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
      if (!s.contains(key)) continue;
      const Json& v = s[key];
      if (!v.is_number() || !(std::fabs(v.get<double>()) < 1e18)) {
        return Unsupported(std::string("'") + key + "' must be a number of magnitude below 1e18", path);
      }
      const double d = v.get<double>();
      const std::string name = key;
      const bool is_min = name == "minimum" || name == "exclusiveMinimum";
      const bool exclusive = name.starts_with("exclusive");
      int64_t bound = 0;
      if (v.is_number_integer()) {
        // Exact: a double cannot hold every 17-digit integer.
        bound = v.get<int64_t>();
        if (exclusive) bound += is_min ? 1 : -1;
        if (is_min) min = min ? std::max(*min, bound) : bound; else max = max ? std::min(*max, bound) : bound;
      } else if (is_min) {
        bound = static_cast<int64_t>(std::ceil(d));
        if (exclusive && static_cast<double>(bound) == d) ++bound;
        min = min ? std::max(*min, bound) : bound;
      } else {
        bound = static_cast<int64_t>(std::floor(d));
        if (exclusive && static_cast<double>(bound) == d) --bound;
        max = max ? std::min(*max, bound) : bound;
      }
    }
    if (!min && !max) return Ref("json-integer");
    auto range = IntegerRange(min, max);
    if (!range.has_value()) return Unsupported(range.error().message(), path);
    return std::move(range).value();
  }

  Result<Expr> CompileString(const Json& s, const std::string& path) {
    const bool has_length = s.contains("minLength") || s.contains("maxLength");
    if (s.contains("pattern") || s.contains("format")) {
      if (has_length) return Unsupported("'minLength'/'maxLength' together with 'pattern' or 'format' cannot be enforced", path);
      if (s.contains("pattern") && s.contains("format")) return Unsupported("'pattern' together with 'format' cannot be enforced", path);
      std::string pattern;
      std::string where = path + "/pattern";
      if (s.contains("format")) {
        if (!s["format"].is_string()) return Unsupported("'format' must be a string", path);
        auto p = FormatPattern(s["format"].get<std::string>());
        if (!p) return Unsupported("unsupported format '" + s["format"].get<std::string>() + "'", path);
        pattern = "^" + *p + "$";
        where = path + "/format";
      } else {
        if (!s["pattern"].is_string()) return Unsupported("'pattern' must be a string", path);
        pattern = s["pattern"].get<std::string>();
      }
      // JSON Schema patterns search (unanchored); an unanchored side matches anything.
      const bool anchored_start = !pattern.empty() && pattern.front() == '^';
      const bool anchored_end = pattern.size() >= 1 && pattern.back() == '$' &&
                                (pattern.size() < 2 || pattern[pattern.size() - 2] != '\\');
      TRY_ASSIGN(Expr body, ParseRegex(pattern, "pattern at " + where));
      std::vector<Expr> parts;
      const Expr any = Star(Class({}, /*negated=*/true));
      if (!anchored_start) parts.push_back(any);
      parts.push_back(std::move(body));
      if (!anchored_end) parts.push_back(any);
      return Seq({Lit("\""), JsonStringBody(Seq(std::move(parts))), Lit("\"")});
    }
    if (!has_length) return Ref("json-string");
    TRY_ASSIGN(std::optional<int64_t> min, Bound(s, "minLength", path));
    TRY_ASSIGN(std::optional<int64_t> max, Bound(s, "maxLength", path));
    const int64_t lo = min.value_or(0);
    const int64_t hi = max.value_or(-1);
    if (lo < 0 || lo > kMaxRepetition || hi > kMaxRepetition) {
      return Unsupported("string length bounds above " + std::to_string(kMaxRepetition) + " are not supported", path);
    }
    if (hi >= 0 && hi < lo) return Unsupported("'maxLength' is below 'minLength'", path);
    return Seq({Lit("\""), Rep(Ref("json-char"), lo, hi), Lit("\"")});
  }

  // Properties appear in the order of "properties"; optional ones may be left out. Between
  // tokens exactly one json-ws.
  Result<Expr> CompileObject(const Json& s, const std::string& path, int depth) {
    const bool has_properties = s.contains("properties");
    if (has_properties && !s["properties"].is_object()) return Unsupported("'properties' must be an object", path);
    const Json additional = s.contains("additionalProperties") ? s["additionalProperties"] : Json(!has_properties);
    if (!has_properties && additional == Json(true) && !s.contains("required")) return Ref("json-object");
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return Unsupported("'required' must be an array", path);
      for (const Json& r : s["required"]) {
        if (!r.is_string()) return Unsupported("'required' entries must be strings", path);
        const std::string name = r.get<std::string>();
        if (!has_properties || !s["properties"].contains(name)) {
          return Unsupported("required property '" + name + "' is not listed in 'properties'", path);
        }
        required.insert(name);
      }
    }
    std::vector<Expr> members;  // per property: "key" ws ":" ws value (a rule)
    std::vector<bool> is_required;
    if (has_properties) {
      for (const auto& [name, sub] : s["properties"].items()) {
        const std::string sub_path = path + "/properties/" + EscapePointer(name);
        TRY_ASSIGN(Expr value, Compile(sub, sub_path, depth + 1));
        const std::string rule = "member-" + std::to_string(member_count_++);
        spec_.rules.push_back({rule, Seq({Lit(Json(name).dump()), JsonWs(), Lit(":"), JsonWs(), std::move(value)})});
        members.push_back(Ref(rule));
        is_required.push_back(required.count(name) != 0);
      }
    }
    std::optional<Expr> extra;  // an additional member
    if (additional.is_boolean()) {
      if (additional.get<bool>()) extra = Seq({Ref("json-string"), JsonWs(), Lit(":"), JsonWs(), Ref("json-value")});
    } else {
      TRY_ASSIGN(Expr value, Compile(additional, path + "/additionalProperties", depth + 1));
      extra = Seq({Ref("json-string"), JsonWs(), Lit(":"), JsonWs(), std::move(value)});
    }
    const Expr comma = Seq({JsonWs(), Lit(","), JsonWs()});
    const Expr extra_tail = extra ? Star(Seq({comma, *extra})) : Seq({});
    // rest(i): the members after i, each preceded by a comma, then any additional members.
    std::vector<Expr> rest(members.size() + 1);
    rest[members.size()] = extra_tail;
    for (size_t i = members.size(); i-- > 0;) {
      Expr item = Seq({comma, members[i]});
      rest[i] = Seq({is_required[i] ? std::move(item) : Opt(std::move(item)), rest[i + 1]});
    }
    std::vector<Expr> bodies;  // the first member present is i (no required one before it)
    bool all_optional = true;
    for (size_t i = 0; i < members.size(); ++i) {
      bodies.push_back(Seq({members[i], rest[i + 1]}));
      if (is_required[i]) { all_optional = false; break; }
    }
    if (all_optional && extra) bodies.push_back(Seq({*extra, extra_tail}));
    Expr body = Alt(std::move(bodies));
    if (all_optional) body = Opt(std::move(body));
    return Seq({Lit("{"), JsonWs(), body.kind == Expr::Kind::kAlternation && body.children.empty()
                                        ? Seq({}) : Seq({std::move(body), JsonWs()}),
                Lit("}")});
  }

  Result<Expr> CompileArray(const Json& s, const std::string& path, int depth) {
    if (s.contains("uniqueItems") && s["uniqueItems"] != Json(false)) {
      return Unsupported("'uniqueItems' cannot be enforced", path);
    }
    TRY_ASSIGN(std::optional<int64_t> min_items, Bound(s, "minItems", path));
    TRY_ASSIGN(std::optional<int64_t> max_items, Bound(s, "maxItems", path));
    const int64_t lo = min_items.value_or(0), hi = max_items.value_or(-1);
    if (lo < 0 || lo > kMaxRepetition || hi > kMaxRepetition) {
      return Unsupported("array length bounds above " + std::to_string(kMaxRepetition) + " are not supported", path);
    }
    if (hi >= 0 && hi < lo) return Unsupported("'maxItems' is below 'minItems'", path);
    std::vector<Expr> prefix;
    if (s.contains("prefixItems")) {
      if (!s["prefixItems"].is_array()) return Unsupported("'prefixItems' must be an array", path);
      for (size_t i = 0; i < s["prefixItems"].size(); ++i) {
        TRY_ASSIGN(Expr e, Compile(s["prefixItems"][i], path + "/prefixItems/" + std::to_string(i), depth + 1));
        prefix.push_back(std::move(e));
      }
    }
    std::optional<Expr> item = Ref("json-value");
    if (s.contains("items")) {
      if (s["items"] == Json(false)) {
        item.reset();
      } else {
        TRY_ASSIGN(Expr e, Compile(s["items"], path + "/items", depth + 1));
        const std::string rule = "item-" + std::to_string(member_count_++);
        spec_.rules.push_back({rule, std::move(e)});
        item = Ref(rule);
      }
    }
    const auto k = static_cast<int64_t>(prefix.size());
    if (!item && lo > k) return Unsupported("'minItems' exceeds the number of 'prefixItems' with 'items': false", path);
    if (hi == 0 || (!item && k == 0)) return Seq({Lit("["), JsonWs(), Lit("]")});
    const Expr comma = Seq({JsonWs(), Lit(","), JsonWs()});
    // The elements are built non-empty (at least one), and the whole list made optional when
    // minItems is 0, so "[" ws "]" never gets a second json-ws.
    const int64_t at_least = std::max<int64_t>(lo, 1);
    // Elements k.. from `items`: between max(lo-k,0) and hi-k more (unbounded when hi < 0).
    Expr tail = Seq({});
    if (item && (hi < 0 || hi > k)) {
      const int64_t tail_min = std::max<int64_t>(at_least - k, 0), tail_max = hi < 0 ? -1 : hi - k;
      if (k == 0) {
        // The first element has no comma before it.
        Expr more = Rep(Seq({comma, *item}), std::max<int64_t>(tail_min - 1, 0), tail_max < 0 ? -1 : tail_max - 1);
        Expr some = Seq({*item, std::move(more)});
        tail = tail_min == 0 ? Opt(std::move(some)) : std::move(some);
      } else {
        tail = Rep(Seq({comma, *item}), tail_min, tail_max);
      }
    }
    // Prefix elements, innermost first: element j is required iff j < lo.
    Expr elements = std::move(tail);
    for (int64_t j = std::min<int64_t>(k, hi < 0 ? k : hi) - 1; j >= 0; --j) {
      Expr here = j == 0 ? Seq({prefix[j], std::move(elements)}) : Seq({comma, prefix[j], std::move(elements)});
      elements = j < at_least ? std::move(here) : Opt(std::move(here));
    }
    Expr list = Seq({std::move(elements), JsonWs()});
    return Seq({Lit("["), JsonWs(), lo == 0 ? Opt(std::move(list)) : std::move(list), Lit("]")});
  }

  Json root_;
  GrammarSpec spec_;
  std::map<std::string, std::string> ref_rules_;
  size_t member_count_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Grammar>> CompileJsonSchema(std::string_view schema_json) {
  Json schema;
  try {
    schema = Json::parse(schema_json);
  } catch (const nlohmann::json::exception& e) {
    return Error(ErrorCode::kInvalidArgument, std::string("JSON Schema is not valid JSON: ") + e.what());
  }
  // Bounded here once, so the recursive comparisons and serializations below stay shallow.
  constexpr int kMaxDocumentDepth = 4 * kMaxNestingDepth;
  if (JsonDepth(schema, kMaxDocumentDepth + 1) > kMaxDocumentDepth) {
    return Error(ErrorCode::kInvalidArgument,
                 "JSON Schema document nested deeper than " + std::to_string(kMaxDocumentDepth) + " levels");
  }
  TRY_ASSIGN(GrammarSpec spec, SchemaCompiler(std::move(schema)).Run());
  return CompileGrammar(spec, "root");
}

Result<std::shared_ptr<const Grammar>> CompileAnyJson() {
  GrammarSpec spec;
  AddJsonBaseRules(&spec);
  spec.rules.push_back({"root", Seq({JsonWs(), Ref("json-object"), JsonWs()})});
  return CompileGrammar(spec, "root");
}

}  // namespace kiln::constraint
