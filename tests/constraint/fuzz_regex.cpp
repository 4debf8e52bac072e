// Fuzz target for the constraint front end of regular expressions: compile arbitrary bytes (an error is fine,
// a crash, a hang or an unbounded allocation is not), then run the recognizer over a few inputs.
// Built with libFuzzer when KILN_FUZZ=ON (clang); otherwise linked with the corpus replay driver
// as a ctest test.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "constraint/constraint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto grammar = kiln::constraint::CompileRegex(text);
  if (!grammar.has_value()) return 0;
  (void)kiln::constraint::GrammarMatches(**grammar, text);
  (void)kiln::constraint::GrammarMatches(**grammar, text.substr(0, size / 2));
  (void)kiln::constraint::GrammarMatches(**grammar, R"({"a": [1, "b", null], "c": {"d": true}})");
  (void)kiln::constraint::GrammarMatches(**grammar, "");
  return 0;
}
