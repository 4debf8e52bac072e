#include "core/status.h"

#include <gtest/gtest.h>

#include "core/function_ref.h"
#include "core/thread_pool.h"

namespace kiln {
namespace {

Result<int> Half(int value) {
  if (value % 2 != 0) return Error(ErrorCode::kInvalidArgument, std::to_string(value) + " is odd");
  return value / 2;
}

Result<int> Quarter(int value) {
  TRY_ASSIGN(int half, Half(value));
  TRY_ASSIGN(int quarter, Half(half));
  return quarter;
}

Status CheckEven(int value) {
  TRY(Half(value));
  return Status::Ok();
}

TEST(StatusTest, ResultCarriesValueOrError) {
  Result<int> ok = Quarter(8);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok.value(), 2);
  Result<int> bad = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().ToString(), "invalid argument: 3 is odd");
}

TEST(StatusTest, TryPropagatesStatus) {
  EXPECT_TRUE(CheckEven(4).ok());
  Status status = CheckEven(5);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.error().WithContext("config.json").message(), "config.json: 5 is odd");
}

TEST(ThreadPoolTest, ParallelForCoversEveryIndexOnce) {
  ThreadPool pool(3);
  for (int64_t count : {1, 2, 7, 1000}) {
    std::vector<int> hits(static_cast<size_t>(count), 0);
    pool.ParallelFor(count, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int h : hits) EXPECT_EQ(h, 1);
  }
}

TEST(FunctionRefTest, CallsTheReferencedLambda) {
  int calls = 0;
  auto add = [&](int a, int b) { ++calls; return a + b; };
  FunctionRef<int(int, int)> ref = add;
  EXPECT_EQ(ref(2, 3), 5);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace kiln
