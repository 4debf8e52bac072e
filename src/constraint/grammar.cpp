#include "constraint/grammar.h"

#include <map>
#include <unordered_map>
#include <utility>

#include "constraint/utf8_ranges.h"

namespace kiln::constraint {

Expr Seq(std::vector<Expr> items) {
  if (items.size() == 1) return std::move(items[0]);
  Expr e;
  e.kind = Expr::Kind::kSequence;
  e.children = std::move(items);
  return e;
}

Expr Alt(std::vector<Expr> items) {
  if (items.size() == 1) return std::move(items[0]);
  Expr e;
  e.kind = Expr::Kind::kAlternation;
  e.children = std::move(items);
  return e;
}

Expr Lit(std::string bytes) {
  Expr e;
  e.kind = Expr::Kind::kLiteral;
  e.text = std::move(bytes);
  return e;
}

Expr Class(std::vector<CodepointRange> ranges, bool negated) {
  Expr e;
  e.kind = Expr::Kind::kCharClass;
  e.ranges = std::move(ranges);
  e.negated = negated;
  return e;
}

Expr Ref(std::string rule_name) {
  Expr e;
  e.kind = Expr::Kind::kRuleRef;
  e.text = std::move(rule_name);
  return e;
}

Expr Rep(Expr item, int64_t min, int64_t max) {
  Expr e;
  e.kind = Expr::Kind::kRepeat;
  e.children.push_back(std::move(item));
  e.min = min;
  e.max = max;
  return e;
}

namespace {

using Element = Grammar::Element;
using ElementKind = Grammar::ElementKind;
using Sequence = std::vector<Element>;

class Lowerer {
 public:
  explicit Lowerer(const GrammarSpec& spec) : spec_(spec) {}

  Result<std::shared_ptr<const Grammar>> Run(const std::string& root) {
    for (const NamedRule& rule : spec_.rules) {
      if (rule_ids_.count(rule.name) != 0) {
        return Error(ErrorCode::kInvalidArgument, "rule '" + rule.name + "' is defined twice");
      }
      NewRule(rule.name);
    }
    auto root_it = rule_ids_.find(root);
    if (root_it == rule_ids_.end()) {
      return Error(ErrorCode::kInvalidArgument, "grammar has no rule '" + root + "'");
    }
    for (size_t i = 0; i < spec_.rules.size(); ++i) {
      current_rule_ = spec_.rules[i].name;
      Sequence seq;
      // A top-level alternation becomes the rule's own alternatives (no helper rule).
      const Expr& body = spec_.rules[i].body;
      if (body.kind == Expr::Kind::kAlternation) {
        for (const Expr& child : body.children) {
          Sequence alt;
          TRY(LowerInto(child, &alt));
          alternatives_[i].push_back(std::move(alt));
        }
      } else {
        TRY(LowerInto(body, &seq));
        alternatives_[i].push_back(std::move(seq));
      }
    }
    TRY(CheckLeftRecursion());
    auto grammar = std::make_shared<Grammar>();
    grammar->root = root_it->second;
    grammar->rule_names = names_;
    grammar->rule_starts.resize(alternatives_.size());
    grammar->byte_classes = std::move(classes_);
    for (uint32_t rule = 0; rule < alternatives_.size(); ++rule) {
      for (const Sequence& alt : alternatives_[rule]) {
        grammar->rule_starts[rule].push_back(static_cast<uint32_t>(grammar->elements.size()));
        grammar->elements.insert(grammar->elements.end(), alt.begin(), alt.end());
        grammar->elements.push_back({ElementKind::kEnd, rule});
      }
    }
    return std::shared_ptr<const Grammar>(std::move(grammar));
  }

 private:
  uint32_t NewRule(std::string name) {
    const auto id = static_cast<uint32_t>(names_.size());
    rule_ids_.emplace(name, id);
    names_.push_back(std::move(name));
    alternatives_.emplace_back();
    return id;
  }
  uint32_t NewHelperRule() { return NewRule(current_rule_ + "#" + std::to_string(names_.size())); }

  Status Count(size_t n) {
    element_count_ += n;
    if (element_count_ > kMaxElements) {
      return Error(ErrorCode::kInvalidArgument,
                   "grammar too large: more than " + std::to_string(kMaxElements) +
                       " elements after expanding repetitions (in rule '" + current_rule_ + "')");
    }
    return Status::Ok();
  }

  uint32_t ClassIndex(const Grammar::ByteClass& c) {
    auto [it, inserted] = class_ids_.emplace(c, static_cast<uint32_t>(classes_.size()));
    if (inserted) classes_.push_back(c);
    return it->second;
  }

  Status PushBytes(const Grammar::ByteClass& c, Sequence* out) {
    TRY(Count(1));
    out->push_back({ElementKind::kBytes, ClassIndex(c)});
    return Status::Ok();
  }

  Status LowerClass(const Expr& expr, Sequence* out) {
    std::vector<CodepointRange> ranges = NormalizeRanges(expr.ranges, expr.negated);
    std::string key;
    for (const CodepointRange& r : ranges) key += std::to_string(r.first) + "-" + std::to_string(r.last) + ",";
    if (auto it = class_rules_.find(key); it != class_rules_.end()) {
      TRY(Count(1));
      out->push_back({ElementKind::kRule, it->second});
      return Status::Ok();
    }
    Grammar::ByteClass single{};
    std::vector<Sequence> multi;
    for (const Utf8Sequence& seq : Utf8Sequences(ranges)) {
      if (seq.size() == 1) {
        for (int b = seq[0].first; b <= seq[0].last; ++b) single[b >> 6] |= uint64_t{1} << (b & 63);
        continue;
      }
      Sequence alt;
      for (const ByteRange& r : seq) {
        Grammar::ByteClass c{};
        for (int b = r.first; b <= r.last; ++b) c[b >> 6] |= uint64_t{1} << (b & 63);
        TRY(PushBytes(c, &alt));
      }
      multi.push_back(std::move(alt));
    }
    const bool has_single = single != Grammar::ByteClass{};
    if (multi.empty() && has_single) return PushBytes(single, out);
    const uint32_t rule = NewHelperRule();
    class_rules_.emplace(key, rule);
    if (has_single) {
      Sequence alt;
      TRY(PushBytes(single, &alt));
      alternatives_[rule].push_back(std::move(alt));
    }
    for (Sequence& alt : multi) alternatives_[rule].push_back(std::move(alt));
    TRY(Count(1));
    out->push_back({ElementKind::kRule, rule});
    return Status::Ok();
  }

  Status LowerRepeat(const Expr& expr, Sequence* out) {
    const int64_t min = expr.min, max = expr.max;
    if (min < 0 || min > kMaxRepetition || max > kMaxRepetition || (max >= 0 && max < min)) {
      return Error(ErrorCode::kInvalidArgument,
                   "repetition {" + std::to_string(min) + "," + (max < 0 ? "" : std::to_string(max)) +
                       "} in rule '" + current_rule_ + "': bounds must satisfy 0 <= min <= max <= " +
                       std::to_string(kMaxRepetition));
    }
    Sequence item;
    TRY(LowerInto(expr.children[0], &item));
    if (item.empty() || max == 0) return Status::Ok();
    if (item.size() > 1) {
      // One element per copy, so {m,n} costs m + 2(n-m) elements whatever the item's size.
      const uint32_t rule = NewHelperRule();
      alternatives_[rule].push_back(std::move(item));
      item = {{ElementKind::kRule, rule}};
    }
    TRY(Count(static_cast<size_t>(min)));
    for (int64_t i = 0; i < min; ++i) out->push_back(item[0]);
    if (max < 0) {
      // star ::= item star | ""   (right recursion: the recognizer's tail call keeps it flat)
      const uint32_t star = NewHelperRule();
      TRY(Count(3));
      alternatives_[star].push_back({item[0], {ElementKind::kRule, star}});
      alternatives_[star].emplace_back();
      out->push_back({ElementKind::kRule, star});
      return Status::Ok();
    }
    // opt_k ::= item opt_{k-1} | ""  for the max - min optional copies.
    int64_t previous = -1;
    for (int64_t k = 0; k < max - min; ++k) {
      const uint32_t opt = NewHelperRule();
      TRY(Count(3));
      Sequence alt{item[0]};
      if (previous >= 0) alt.push_back({ElementKind::kRule, static_cast<uint32_t>(previous)});
      alternatives_[opt].push_back(std::move(alt));
      alternatives_[opt].emplace_back();
      previous = opt;
    }
    if (previous >= 0) {
      TRY(Count(1));
      out->push_back({ElementKind::kRule, static_cast<uint32_t>(previous)});
    }
    return Status::Ok();
  }

  Status LowerInto(const Expr& expr, Sequence* out) {
    switch (expr.kind) {
      case Expr::Kind::kSequence:
        for (const Expr& child : expr.children) TRY(LowerInto(child, out));
        return Status::Ok();
      case Expr::Kind::kLiteral:
        for (char ch : expr.text) {
          Grammar::ByteClass c{};
          const auto b = static_cast<uint8_t>(ch);
          c[b >> 6] |= uint64_t{1} << (b & 63);
          TRY(PushBytes(c, out));
        }
        return Status::Ok();
      case Expr::Kind::kCharClass:
        return LowerClass(expr, out);
      case Expr::Kind::kRuleRef: {
        auto it = rule_ids_.find(expr.text);
        if (it == rule_ids_.end()) {
          return Error(ErrorCode::kInvalidArgument,
                       "undefined rule '" + expr.text + "' referenced in rule '" + current_rule_ + "'");
        }
        TRY(Count(1));
        out->push_back({ElementKind::kRule, it->second});
        return Status::Ok();
      }
      case Expr::Kind::kAlternation: {
        const uint32_t rule = NewHelperRule();
        for (const Expr& child : expr.children) {
          Sequence alt;
          TRY(LowerInto(child, &alt));
          alternatives_[rule].push_back(std::move(alt));
        }
        TRY(Count(1));
        out->push_back({ElementKind::kRule, rule});
        return Status::Ok();
      }
      case Expr::Kind::kRepeat:
        return LowerRepeat(expr, out);
    }
    return Error(ErrorCode::kInternal, "unknown expression kind");
  }

  // A rule that reaches itself through a prefix of nullable elements would make the pushdown
  // recognizer's closure push forever.
  Status CheckLeftRecursion() {
    const size_t n = alternatives_.size();
    std::vector<char> nullable(n, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const Sequence& alt : alternatives_[r]) {
          bool all = true;
          for (const Element& e : alt) {
            if (e.kind == ElementKind::kBytes || !nullable[e.index]) { all = false; break; }
          }
          if (all) { nullable[r] = 1; changed = true; break; }
        }
      }
    }
    // Calls reachable without consuming input. Only a cycle through a call that pushes a frame
    // (not in tail position) grows the stack forever; a cycle of tail calls revisits the same
    // (position, stack) item and the closure's deduplication ends it (x* of a nullable x).
    struct Edge {
      uint32_t to;
      bool pushes;
    };
    std::vector<std::vector<Edge>> edges(n);
    std::vector<std::vector<uint32_t>> reverse(n);
    for (size_t r = 0; r < n; ++r) {
      for (const Sequence& alt : alternatives_[r]) {
        for (size_t i = 0; i < alt.size(); ++i) {
          const Element& e = alt[i];
          if (e.kind == ElementKind::kBytes) break;
          edges[r].push_back({e.index, i + 1 < alt.size()});
          reverse[e.index].push_back(static_cast<uint32_t>(r));
          if (!nullable[e.index]) break;
        }
      }
    }
    // Kosaraju's strongly connected components, iteratively (millions of helper rules).
    std::vector<uint32_t> order;
    std::vector<uint8_t> seen(n, 0);
    std::vector<std::pair<uint32_t, size_t>> stack;
    for (uint32_t start = 0; start < n; ++start) {
      if (seen[start]) continue;
      seen[start] = 1;
      stack.push_back({start, 0});
      while (!stack.empty()) {
        const uint32_t rule = stack.back().first;
        const size_t next = stack.back().second++;
        if (next == edges[rule].size()) {
          order.push_back(rule);
          stack.pop_back();
        } else if (const uint32_t to = edges[rule][next].to; !seen[to]) {
          seen[to] = 1;
          stack.push_back({to, 0});
        }
      }
    }
    constexpr uint32_t kNone = UINT32_MAX;
    std::vector<uint32_t> component(n, kNone);
    std::vector<uint32_t> pending;
    for (size_t i = order.size(); i-- > 0;) {
      const uint32_t root = order[i];
      if (component[root] != kNone) continue;
      component[root] = root;
      pending.push_back(root);
      while (!pending.empty()) {
        const uint32_t rule = pending.back();
        pending.pop_back();
        for (uint32_t from : reverse[rule]) {
          if (component[from] == kNone) {
            component[from] = root;
            pending.push_back(from);
          }
        }
      }
    }
    for (uint32_t r = 0; r < n; ++r) {
      for (const Edge& edge : edges[r]) {
        if (!edge.pushes || component[edge.to] != component[r]) continue;
        std::string name = names_[r];
        if (auto hash = name.find('#'); hash != std::string::npos) name.resize(hash);
        return Error(ErrorCode::kInvalidArgument,
                     "left recursion: rule '" + name +
                         "' can reach itself without consuming input (rewrite it right-recursively)");
      }
    }
    return Status::Ok();
  }

  const GrammarSpec& spec_;
  std::unordered_map<std::string, uint32_t> rule_ids_;
  std::vector<std::string> names_;
  std::vector<std::vector<Sequence>> alternatives_;
  std::map<Grammar::ByteClass, uint32_t> class_ids_;
  std::vector<Grammar::ByteClass> classes_;
  std::unordered_map<std::string, uint32_t> class_rules_;
  std::string current_rule_;
  size_t element_count_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Grammar>> CompileGrammar(const GrammarSpec& spec,
                                                      const std::string& root) {
  return Lowerer(spec).Run(root);
}

}  // namespace kiln::constraint
