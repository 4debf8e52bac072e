// Helpers shared by the constraint tests.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "constraint/constraint.h"

namespace kiln::constraint::testing {

// Compiles or fails the test with the error message.
inline std::shared_ptr<const Grammar> MustCompile(Result<std::shared_ptr<const Grammar>> result) {
  EXPECT_TRUE(result.has_value()) << (result.has_value() ? "" : result.error().message());
  return result.has_value() ? result.value() : nullptr;
}

// The error message of a compile that must fail ("" and a test failure when it succeeds).
inline std::string ErrorOf(const Result<std::shared_ptr<const Grammar>>& result) {
  EXPECT_FALSE(result.has_value()) << "expected a compile error";
  return result.has_value() ? "" : result.error().message();
}

inline bool Matches(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  return g != nullptr && GrammarMatches(*g, text);
}

}  // namespace kiln::constraint::testing
