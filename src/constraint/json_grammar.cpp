#include "constraint/json_grammar.h"

#include <algorithm>

#include "constraint/utf8_ranges.h"

namespace kiln::constraint {
namespace {

Expr Digit() { return Class({{'0', '9'}}); }

// Decimal strings of equal length, lo <= hi digit-wise as numbers.
Expr SameLengthRange(const std::string& lo, const std::string& hi) {
  if (lo.empty()) return Seq({});
  if (lo.size() == 1) return Class({{static_cast<uint32_t>(lo[0]), static_cast<uint32_t>(hi[0])}});
  // 00..0 to 99..9 is any n digits. Without this shortcut the two branches below would each
  // recurse again, 2^n expressions for n digits; with it only one branch recurses.
  if (lo.find_first_not_of('0') == std::string::npos && hi.find_first_not_of('9') == std::string::npos) {
    const auto n = static_cast<int64_t>(lo.size());
    return Rep(Digit(), n, n);
  }
  const std::string lo_rest = lo.substr(1), hi_rest = hi.substr(1);
  if (lo[0] == hi[0]) return Seq({Lit(std::string(1, lo[0])), SameLengthRange(lo_rest, hi_rest)});
  std::vector<Expr> alts;
  alts.push_back(Seq({Lit(std::string(1, lo[0])), SameLengthRange(lo_rest, std::string(lo_rest.size(), '9'))}));
  if (hi[0] - lo[0] >= 2) {
    const auto n = static_cast<int64_t>(lo_rest.size());
    alts.push_back(Seq({Class({{static_cast<uint32_t>(lo[0] + 1), static_cast<uint32_t>(hi[0] - 1)}}),
                        Rep(Digit(), n, n)}));
  }
  alts.push_back(Seq({Lit(std::string(1, hi[0])), SameLengthRange(std::string(hi_rest.size(), '0'), hi_rest)}));
  return Alt(std::move(alts));
}

uint64_t PowerOfTen(size_t exponent) {
  uint64_t p = 1;
  for (size_t i = 0; i < exponent; ++i) p *= 10;
  return p;
}

// Non-negative integers in [lo, hi] (hi nullopt: unbounded).
Expr NonNegativeRange(uint64_t lo, std::optional<uint64_t> hi) {
  std::vector<Expr> alts;
  const size_t lo_digits = std::to_string(lo).size();
  const size_t hi_digits = hi ? std::to_string(*hi).size() : lo_digits;
  for (size_t len = lo_digits; len <= hi_digits; ++len) {
    const uint64_t a = std::max(lo, len == 1 ? 0 : PowerOfTen(len - 1));
    uint64_t b = len >= 20 ? UINT64_MAX : PowerOfTen(len) - 1;
    if (hi) b = std::min(b, *hi);
    if (a <= b) alts.push_back(SameLengthRange(std::to_string(a), std::to_string(b)));
  }
  if (!hi) {
    // Every number with more digits than lo.
    alts.push_back(Seq({Class({{'1', '9'}}), Rep(Digit(), static_cast<int64_t>(lo_digits), -1)}));
  }
  return Alt(std::move(alts));
}

std::vector<CodepointRange> Intersect(const std::vector<CodepointRange>& a,
                                      const std::vector<CodepointRange>& b) {
  std::vector<CodepointRange> out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const uint32_t first = std::max(a[i].first, b[j].first);
    const uint32_t last = std::min(a[i].last, b[j].last);
    if (first <= last) out.push_back({first, last});
    if (a[i].last < b[j].last) ++i; else ++j;
  }
  return out;
}

}  // namespace

void AddJsonBaseRules(GrammarSpec* spec) {
  auto add = [&](const char* name, Expr body) { spec->rules.push_back({name, std::move(body)}); };
  const Expr ws = JsonWs();
  add("json-ws", Rep(Class({{' ', ' '}, {'\t', '\t'}, {'\n', '\n'}, {'\r', '\r'}}), 0, kMaxJsonWhitespace));
  add("json-value", Alt({Ref("json-object"), Ref("json-array"), Ref("json-string"), Ref("json-number"),
                         Lit("true"), Lit("false"), Lit("null")}));
  Expr member = Seq({Ref("json-string"), ws, Lit(":"), ws, Ref("json-value")});
  add("json-object",
      Seq({Lit("{"), ws,
           Opt(Seq({member, Star(Seq({ws, Lit(","), ws, member})), ws})), Lit("}")}));
  add("json-array", Seq({Lit("["), ws,
                         Opt(Seq({Ref("json-value"), Star(Seq({ws, Lit(","), ws, Ref("json-value")})), ws})),
                         Lit("]")}));
  const Expr hex = Class({{'0', '9'}, {'a', 'f'}, {'A', 'F'}});
  add("json-char", Alt({Class({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}, /*negated=*/true),
                        Seq({Lit("\\"), Alt({Class({{'"', '"'}, {'\\', '\\'}, {'/', '/'}, {'b', 'b'},
                                                    {'f', 'f'}, {'n', 'n'}, {'r', 'r'}, {'t', 't'}}),
                                             Seq({Lit("u"), Rep(hex, 4, 4)})})})}));
  add("json-string", Seq({Lit("\""), Star(Ref("json-char")), Lit("\"")}));
  add("json-integer", Seq({Opt(Lit("-")), Alt({Lit("0"), Seq({Class({{'1', '9'}}), Star(Digit())})})}));
  add("json-number", Seq({Ref("json-integer"), Opt(Seq({Lit("."), Rep(Digit(), 1, -1)})),
                          Opt(Seq({Class({{'e', 'e'}, {'E', 'E'}}), Opt(Class({{'+', '+'}, {'-', '-'}})),
                                   Rep(Digit(), 1, -1)}))}));
}

Result<Expr> IntegerRange(std::optional<int64_t> min, std::optional<int64_t> max) {
  if (min && max && *min > *max) {
    return Error(ErrorCode::kInvalidArgument, "integer range [" + std::to_string(*min) + ", " +
                                                  std::to_string(*max) + "] is empty");
  }
  std::vector<Expr> alts;
  // Negative part: -(magnitudes in [max(1, -max), -min]).
  if (!min || *min < 0) {
    const uint64_t magnitude_lo = (max && *max < 0) ? static_cast<uint64_t>(-(*max + 1)) + 1 : 1;
    std::optional<uint64_t> magnitude_hi;
    if (min) magnitude_hi = static_cast<uint64_t>(-(*min + 1)) + 1;
    alts.push_back(Seq({Lit("-"), NonNegativeRange(magnitude_lo, magnitude_hi)}));
  }
  if (!max || *max >= 0) {
    const uint64_t lo = (min && *min > 0) ? static_cast<uint64_t>(*min) : 0;
    std::optional<uint64_t> hi;
    if (max) hi = static_cast<uint64_t>(*max);
    alts.push_back(NonNegativeRange(lo, hi));
  }
  return Alt(std::move(alts));
}

Expr JsonStringBody(const Expr& raw) {
  switch (raw.kind) {
    case Expr::Kind::kLiteral: {
      std::string out;
      for (char ch : raw.text) {
        const auto b = static_cast<uint8_t>(ch);
        if (ch == '"' || ch == '\\') {
          out += '\\';
          out += ch;
        } else if (b < 0x20) {
          static const char* kHex = "0123456789abcdef";
          out += "\\u00";
          out += kHex[b >> 4];
          out += kHex[b & 15];
        } else {
          out += ch;
        }
      }
      return Lit(std::move(out));
    }
    case Expr::Kind::kCharClass: {
      const std::vector<CodepointRange> allowed =
          NormalizeRanges({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}, /*negated=*/true);
      return Class(Intersect(NormalizeRanges(raw.ranges, raw.negated), allowed));
    }
    case Expr::Kind::kRuleRef:
      return raw;
    case Expr::Kind::kSequence:
    case Expr::Kind::kAlternation:
    case Expr::Kind::kRepeat: {
      Expr out = raw;
      for (Expr& child : out.children) child = JsonStringBody(child);
      return out;
    }
  }
  return raw;
}

std::optional<std::string> FormatPattern(const std::string& format) {
  static const std::string kDate = R"([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))";
  static const std::string kTime =
      R"(([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))";
  static const std::string kOctet = R"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))";
  if (format == "date") return kDate;
  if (format == "time") return kTime;
  if (format == "date-time") return kDate + "[Tt]" + kTime;
  if (format == "uuid") {
    return "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
  }
  if (format == "email") {
    return R"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
           R"(@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)";
  }
  if (format == "ipv4") return kOctet + R"((\.)" + kOctet + "){3}";
  return std::nullopt;
}

}  // namespace kiln::constraint
