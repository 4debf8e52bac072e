// A target that runs several ops as one kernel (KernelCatalog::FusedGroups) gets a plan in which
// nothing the group writes shares bytes with anything it reads: the planner keeps every value
// of the group alive from the group's first op to its last.
#include <gtest/gtest.h>

#include "compiler/program.h"

namespace kiln {
namespace {

// Fuses ops [1, 3] into one kernel.
class FusingCatalog : public KernelCatalog {
 public:
  explicit FusingCatalog(bool fuse) : fuse_(fuse) {}
  std::string target_name() const override { return "test"; }
  int64_t alignment_bytes() const override { return 64; }
  Status CheckOp(const Graph&, const Op&) const override { return Status::Ok(); }
  int64_t ScratchBytes(const Graph&, const Op&, int64_t, int64_t) const override { return 0; }
  std::vector<int32_t> FusedGroups(const Graph& graph) const override {
    if (!fuse_) return {};
    std::vector<int32_t> groups(graph.ops().size(), 1);
    groups[1] = 3;
    return groups;
  }

 private:
  bool fuse_;
};

// embed -> x; a = 2x; b = 2a; c = 2b; logits = c + c. Op by op, c (written at op 3) may take
// x's bytes (x is last read at op 1); fused, it may not.
struct Chain {
  Graph graph;
  int32_t x = -1, a = -1, b = -1, c = -1;
};

Chain MakeChain() {
  Chain chain;
  Graph& g = chain.graph;
  const int32_t ids = g.AddInput("token_ids", DType::kI32, Shape{{Tokens()}});
  g.AddInput("positions", DType::kI32, Shape{{Tokens()}});
  g.AddInput("sequences", DType::kI32, Shape{{Tokens()}});
  g.AddInput("logit_rows", DType::kI32, Shape{{Rows()}});
  const int32_t table = g.AddWeight("embed_tokens.weight", DType::kF32, Shape{{Const(16), Const(32)}});
  const Shape row{{Tokens(), Const(32)}};
  OpAttrs twice;
  twice.scale = 2.0f;
  chain.x = g.AddOp(OpKind::kEmbed, "embed", {ids, table}, {}, DType::kF32, row);
  chain.a = g.AddOp(OpKind::kScale, "a", {chain.x}, twice, DType::kF32, row);
  chain.b = g.AddOp(OpKind::kScale, "b", {chain.a}, twice, DType::kF32, row);
  chain.c = g.AddOp(OpKind::kScale, "c", {chain.b}, twice, DType::kF32, row);
  g.MarkOutput(g.AddOp(OpKind::kAdd, "logits", {chain.c, chain.c}, {}, DType::kF32, row));
  return chain;
}

// The [first, last] op interval the plan gave `value`.
std::pair<int32_t, int32_t> Interval(const StepFunction& step, int32_t value) {
  for (size_t i = 0; i < step.request_owner.size(); ++i) {
    if (step.request_owner[i] == value) return {step.requests[i].first_step, step.requests[i].last_step};
  }
  return {-1, -1};
}

bool Apart(const StepFunction& step, int32_t u, int32_t v) {
  const Placement& p = step.placements[static_cast<size_t>(u)];
  const Placement& q = step.placements[static_cast<size_t>(v)];
  return p.offset_bytes + p.size_bytes <= q.offset_bytes || q.offset_bytes + q.size_bytes <= p.offset_bytes;
}

Result<Program> Compile(const Chain& chain, bool fuse) {
  std::vector<StepSpec> steps;
  steps.push_back({"prefill", chain.graph, 4, 1});
  WeightLookup lookup = [](const Value& expected) -> Result<WeightSpec> {
    return WeightSpec{expected.name, DType::kF32, {16, 32}};
  };
  CompileOptions options;
  options.max_tokens = 4;
  options.max_context = 8;
  return CompileProgram(std::move(steps), FusingCatalog(fuse), lookup, options);
}

TEST(FusedPlanTest, AFusedGroupsValuesLiveAcrossTheWholeGroup) {
  const Chain chain = MakeChain();
  auto separate = Compile(chain, /*fuse=*/false);
  auto fused = Compile(chain, /*fuse=*/true);
  ASSERT_TRUE(separate.has_value()) << separate.error().ToString();
  ASSERT_TRUE(fused.has_value()) << fused.error().ToString();
  const StepFunction& op_by_op = separate->steps[0];
  const StepFunction& group = fused->steps[0];
  EXPECT_EQ(Interval(op_by_op, chain.x), std::make_pair(0, 1));
  EXPECT_EQ(Interval(op_by_op, chain.c), std::make_pair(3, 4));
  EXPECT_EQ(Interval(group, chain.x), std::make_pair(0, 3));  // read by op 1, inside the group
  EXPECT_EQ(Interval(group, chain.a), std::make_pair(1, 3));
  EXPECT_EQ(Interval(group, chain.b), std::make_pair(1, 3));
  EXPECT_EQ(Interval(group, chain.c), std::make_pair(1, 4));  // written inside the group, read after it
  // Op by op two [4, 32] f32 tensors (512 bytes each) are live at a time, so x's bytes may go to
  // c; in the group all four are live at once, and every pair is apart.
  EXPECT_EQ(op_by_op.lower_bound_bytes, 2 * 512);
  EXPECT_EQ(group.lower_bound_bytes, 4 * 512);
  for (int32_t u : {chain.x, chain.a, chain.b, chain.c}) {
    for (int32_t v : {chain.x, chain.a, chain.b, chain.c}) {
      if (u != v) {
        EXPECT_TRUE(Apart(group, u, v)) << u << " and " << v;
      }
    }
  }
  EXPECT_TRUE(VerifyProgram(*fused, fused->arena_bytes).ok());
}

}  // namespace
}  // namespace kiln
