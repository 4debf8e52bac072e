// Chat templates rendered by kiln against Python Jinja2 renderings of the real templates
// (goldens from scripts/make_tokenizer_goldens.py), plus the safety limits.
#include <gtest/gtest.h>

#include <map>

#include "test_assets.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/tokenizer_json.h"

namespace kiln::tokenizer {
namespace {

using nlohmann::ordered_json;
using testing::LoadGolden;

ChatRequest RequestFor(const ordered_json& golden, const ordered_json& c) {
  ChatRequest request;
  for (const auto& conv : golden["conversations"]) {
    if (conv["name"] == c["conversation"]) {
      request.messages = conv["messages"];
      request.tools = conv.contains("tools") ? conv["tools"] : ordered_json();
    }
  }
  request.add_generation_prompt = c["add_generation_prompt"].get<bool>();
  request.extra_context = c["extra"];
  request.extra_context["date_string"] = "26 Jul 2024";
  return request;
}

std::string CaseName(const ordered_json& c) {
  return c.value("template", c.value("file", "")) + " / " + c["conversation"].get<std::string>() +
         (c["add_generation_prompt"].get<bool>() ? " +gen" : "") + " " + c["extra"].dump();
}

// Gemma 4, Gemma 3, Llama 3.x and Qwen 3 templates; sources are in the golden file.
TEST(ChatTemplate, FamilyTemplatesMatchJinja2) {
  const auto golden = LoadGolden("chat_templates.json");
  std::map<std::string, ChatTemplate> parsed;
  int matched = 0, errors_matched = 0;
  for (const auto& c : golden["cases"]) {
    SCOPED_TRACE(CaseName(c));
    const std::string name = c["template"].get<std::string>();
    if (!parsed.count(name)) {
      Result<ChatTemplate> t = ChatTemplate::Parse(golden["templates"][name].get<std::string>(), c["bos_token"].get<std::string>(),
                                                   c["eos_token"].get<std::string>());
      ASSERT_TRUE(t.has_value()) << t.error().ToString();
      parsed.emplace(name, std::move(t).value());
    }
    Result<std::string> text = parsed.at(name).Render(RequestFor(golden, c));
    if (c.contains("error")) {
      EXPECT_FALSE(text.has_value()) << "Jinja2 failed with " << c["error"] << " but kiln rendered:\n" << *text;
      errors_matched += !text.has_value();
      continue;
    }
    ASSERT_TRUE(text.has_value()) << text.error().ToString();
    EXPECT_EQ(*text, c["expected"].get<std::string>());
    matched += *text == c["expected"].get<std::string>();
  }
  EXPECT_GE(matched, 100);
  EXPECT_EQ(errors_matched, 4);
}

// Every template shipped with llama.cpp (69 real templates of many families): reports how many
// render exactly like Jinja2; requires the asset cache.
TEST(ChatTemplate, BundledTemplatesMatchJinja2) {
  const auto golden = LoadGolden("chat_templates_all.json");
  if (!testing::FindAsset("llama.cpp/models/templates/google-gemma-4-31B-it.jinja")) {
    GTEST_SKIP() << "llama.cpp templates not cached (run scripts/fetch-tokenizer-assets.sh)";
  }
  int total = 0, exact = 0, unsupported = 0;
  std::map<std::string, std::string> failures;
  for (const auto& c : golden["cases"]) {
    const std::string file = c["file"].get<std::string>();
    auto path = testing::FindAsset("llama.cpp/models/templates/" + file);
    if (!path) continue;
    ++total;
    Result<std::string> source = ReadFileToString(*path);
    ASSERT_TRUE(source.has_value());
    Result<ChatTemplate> t = ChatTemplate::Parse(*source, "<s>", "</s>");
    if (!t.has_value()) {
      ++unsupported;
      failures[file] = t.error().ToString();
      continue;
    }
    Result<std::string> text = t->Render(RequestFor(golden, c));
    const bool ok = c.contains("error") ? !text.has_value()
                                        : (text.has_value() && *text == c["expected"].get<std::string>());
    if (ok) {
      ++exact;
    } else if (!failures.count(file)) {
      failures[file] = text.has_value() ? "output differs (" + CaseName(c) + ")" : text.error().ToString();
    }
  }
  for (const auto& [file, why] : failures) std::printf("  template %s: %s\n", file.c_str(), why.c_str());
  std::printf("bundled templates: %d/%d cases match Jinja2, %d cases in templates that do not parse\n", exact, total,
              unsupported);
  EXPECT_GE(exact * 10, total * 8) << "fewer than 80% of the bundled template cases match";
}

Result<std::string> RenderSource(const std::string& source, const ordered_json& messages = ordered_json::array(),
                                 jinja::RenderOptions options = {}) {
  TRY_ASSIGN(ChatTemplate t, ChatTemplate::Parse(source, "<bos>", "<eos>"));
  ChatRequest request;
  request.messages = messages;
  return t.Render(request, options);
}

// The rendering, or "ERROR: ..." so that a failure shows the message.
std::string Render(const std::string& source) {
  Result<std::string> r = RenderSource(source);
  return r.has_value() ? *r : "ERROR: " + r.error().ToString();
}

TEST(ChatTemplate, JinjaSemantics) {
  // for-loop scope does not leak; namespace carries state; if does not scope.
  EXPECT_EQ(Render("{% set x = 1 %}{% for i in range(3) %}{% set x = i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(Render("{% set ns = namespace(x=1) %}{% for i in range(3) %}{% set ns.x = i %}{% endfor %}{{ ns.x }}"), "2");
  EXPECT_EQ(Render("{% if true %}{% set y = 5 %}{% endif %}{{ y }}"), "5");
  // loop variables, else, inline filter, break/continue.
  EXPECT_EQ(Render("{% for c in 'abc' %}{{ loop.index }}{{ c }}{{ ',' if not loop.last }}{% endfor %}"), "1a,2b,3c");
  EXPECT_EQ(Render("{% for i in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(Render("{% for i in range(10) if i % 3 == 0 %}{{ i }}/{{ loop.length }} {% endfor %}"), "0/4 3/4 6/4 9/4 ");
  EXPECT_EQ(Render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"), "013");
  // Python printing and arithmetic.
  EXPECT_EQ(Render("{{ none }} {{ true }} {{ 1.0 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 1 / 4 }}"),
            "None True 1.0 3 -4 1 1024 0.25");
  EXPECT_EQ(Render("{{ [1, 'a', none] }} {{ {'k': 'v'} }}"), "[1, 'a', None] {'k': 'v'}");
  // Filters, tests and methods used by real templates.
  EXPECT_EQ(Render("{{ '  x  ' | trim }}|{{ 'a,b' .split(',') | join('+') }}|{{ 'Hi' | upper }}|{{ [3,1,2] | sort | list }}"),
            "x|a+b|HI|[1, 2, 3]");
  EXPECT_EQ(Render("{{ {'b': 1, 'a': 2} | dictsort }}"), "[['a', 2], ['b', 1]]");
  EXPECT_EQ(Render("{{ {'b': 1, 'a': [1, 'x']} | tojson }}"), "{\"b\": 1, \"a\": [1, \"x\"]}");
  EXPECT_EQ(Render("{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ 3 is odd }}"),
            "False True True True True");
  EXPECT_EQ(Render("{{ 'abcdef'[1:4] }} {{ [1,2,3][::-1] }} {{ 'x' ~ 1 }} {{ 'ab' in 'cabd' }}"), "bcd [3, 2, 1] x1 True");
  EXPECT_EQ(Render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}"),
            "Hi A! Hi B?");
  // Whitespace control as transformers configures it (trim_blocks + lstrip_blocks).
  EXPECT_EQ(Render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(Render("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(Render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
}

TEST(ChatTemplate, UntrustedTemplatesAreBounded) {
  jinja::RenderOptions options;
  options.limits.max_steps = 100000;
  options.limits.max_output_bytes = 1 << 16;
  // Output bound.
  Result<std::string> big = RenderSource("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", ordered_json::array(), options);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code(), ErrorCode::kOutOfRange);
  // Step bound (nested loops that print nothing).
  Result<std::string> slow =
      RenderSource("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", ordered_json::array(), options);
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error().code(), ErrorCode::kOutOfRange);
  // Unbounded recursion.
  Result<std::string> recursive = RenderSource("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_FALSE(recursive.has_value());
  EXPECT_EQ(recursive.error().code(), ErrorCode::kOutOfRange);
  // Exponential string growth.
  Result<std::string> doubling = RenderSource(
      "{% set ns = namespace(s='x') %}{% for i in range(80) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}");
  ASSERT_FALSE(doubling.has_value());
  // Deep nesting in the source.
  EXPECT_FALSE(RenderSource("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").has_value());
  EXPECT_FALSE(RenderSource("{{ " + std::string(5000, '[') + " }}").has_value());
  // raise_exception surfaces the template's message.
  Result<std::string> raised = RenderSource("{{ raise_exception('roles must alternate') }}");
  ASSERT_FALSE(raised.has_value());
  EXPECT_NE(raised.error().message().find("roles must alternate"), std::string::npos);
}

TEST(ChatTemplate, UnsupportedConstructsAreNamed) {
  for (const char* source : {"{% include 'other.jinja' %}", "{% import 'x' as y %}", "{% extends 'base' %}",
                             "{% for x in y recursive %}{% endfor %}", "{{ x | no_such_filter }}"}) {
    Result<std::string> r = RenderSource(source);
    ASSERT_FALSE(r.has_value()) << source;
    EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported) << source << ": " << r.error().ToString();
  }
  Result<std::string> r = RenderSource("{% include 'other.jinja' %}");
  EXPECT_NE(r.error().message().find("include"), std::string::npos) << r.error().message();
  // Syntax errors name the line.
  Result<std::string> syntax = RenderSource("line1\n{% if %}");
  ASSERT_FALSE(syntax.has_value());
  EXPECT_NE(syntax.error().message().find("line 2"), std::string::npos) << syntax.error().message();
}

}  // namespace
}  // namespace kiln::tokenizer
