// Gemma 4 MTP assistants (engine/mtp_draft.h, models/gemma4_assistant.h): the drafter compiled
// into its target's Program against transformers (scripts/make_mtp_fixtures.py: the assistant
// called directly on the target's own hidden states and KV, before and past the sliding window),
// and speculative generation with it token-identical to plain decoding, alone and batched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <optional>
#include <random>

#include "engine/generator.h"
#include "engine/model_loader.h"
#include "engine/mtp_draft.h"
#include "engine/scheduler.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "io/npy.h"
#include "kiln/kiln.h"
#include "scheduled_cases.h"
#include "synthetic_constraint.h"

namespace kiln {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(KILN_FIXTURES_DIR) + "/" + name; }
// "mtp": random weights, made with transformers, with its reference outputs; "mtp_copy": made with
// numpy to draft mostly its input token again, so that targets accept some of its drafts.
std::string AssistantDir(const std::string& target, const std::string& assistant = "mtp") { return FixtureDir(target) + "/" + assistant; }

std::unique_ptr<LoadedModel> LoadWithAssistant(const std::string& target, const std::string& assistant, LoadOptions options = {}) {
  options.assistant = FixtureDir(target) + "/" + assistant;
  if (options.num_threads == 0) options.num_threads = 1;  // tiny fixtures: one thread is fastest, beside other tests too
  auto model = LoadedModel::Load(FixtureDir(target), options);
  EXPECT_TRUE(model.has_value()) << model.error().ToString();
  return model.has_value() ? std::move(*model) : nullptr;
}

int64_t Sum(const std::vector<int64_t>& counts) { return std::accumulate(counts.begin(), counts.end(), int64_t{0}); }

float MaxAbsDiff(std::span<const float> a, std::span<const float> b) {
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// The fixture's own prompt (24 tokens: past its sliding window of 6).
std::vector<int32_t> FixturePrompt(const std::string& target) {
  auto reference = ReadJsonFile(FixtureDir(target) + "/reference.json");
  EXPECT_TRUE(reference.has_value());
  return reference.has_value() ? (*reference)["prompt"].get<std::vector<int32_t>>() : std::vector<int32_t>{};
}

LoadOptions CopyDrafterBounds() {
  LoadOptions load;
  load.max_tokens = 16;
  load.max_context = 128;
  return load;
}

struct ReferenceCase {
  std::string target, assistant;
};
void PrintTo(const ReferenceCase& c, std::ostream* out) { *out << c.target << "/" << c.assistant; }

class MtpReferenceTest : public ::testing::TestWithParam<ReferenceCase> {};

// For each reference round at t: the target prefilled with prompt[0, t) gives the hidden state
// transformers gives at t - 1; then each draft step's logits, post-projection state and argmax
// match the assistant's, fed back step by step.
TEST_P(MtpReferenceTest, DrafterMatchesTransformers) {
  const std::string target = GetParam().target, assistant = GetParam().assistant;
  // The reference comes from transformers (scripts/make_mtp_fixtures.py, run where torch and
  // transformers 5.17 are installed: the GPU machine); until it has been generated there is
  // nothing to compare with, and the test says so.
  if (!std::filesystem::exists(AssistantDir(target, assistant) + "/reference.json")) {
    GTEST_SKIP() << "no transformers reference in " << AssistantDir(target, assistant) << ": run scripts/make_mtp_fixtures.py with transformers 5.17";
  }
  auto reference = ReadJsonFile(AssistantDir(target, assistant) + "/reference.json");
  ASSERT_TRUE(reference.has_value()) << reference.error().ToString();
  auto prompt_json = ReadJsonFile(FixtureDir(target) + "/reference.json");
  ASSERT_TRUE(prompt_json.has_value());
  const std::vector<int32_t> prompt = (*prompt_json)["prompt"].get<std::vector<int32_t>>();
  auto logits = ReadNpyF32(AssistantDir(target, assistant) + "/draft_logits.npy");
  auto hidden = ReadNpyF32(AssistantDir(target, assistant) + "/draft_hidden.npy");
  auto target_hidden = ReadNpyF32(AssistantDir(target, assistant) + "/target_hidden.npy");
  ASSERT_TRUE(logits.has_value() && hidden.has_value() && target_hidden.has_value());
  const int64_t steps = (*reference)["draft_steps"].get<int64_t>();
  const auto rounds = (*reference)["rounds"].get<std::vector<int64_t>>();
  const auto draft_tokens = (*reference)["draft_tokens"].get<std::vector<std::vector<int32_t>>>();

  auto model = LoadWithAssistant(target, assistant);
  ASSERT_NE(model, nullptr);
  auto session = model->NewSession();
  ASSERT_TRUE(session.has_value()) << session.error().ToString();
  Runner& runner = session->runner();
  ASSERT_TRUE(runner.has_drafter());
  const int64_t V = runner.vocab_size(), H = runner.hidden_size();
  ASSERT_EQ(logits->shape, (std::vector<int64_t>{static_cast<int64_t>(rounds.size()) * steps, V}));
  ASSERT_EQ(hidden->shape, (std::vector<int64_t>{static_cast<int64_t>(rounds.size()) * steps, H}));
  bool past_window = false;
  for (size_t r = 0; r < rounds.size(); ++r) {
    const int64_t t = rounds[r];
    past_window |= t > 6;  // the fixtures' sliding window
    session->Reset();
    std::vector<float> row(static_cast<size_t>(V)), state(static_cast<size_t>(H));
    ASSERT_TRUE(session->StepInto(std::span<const int32_t>(prompt.data(), static_cast<size_t>(t)), false, row, state).ok());
    const std::span<const float> expected_state(target_hidden->values.data() + (t - 1) * H, static_cast<size_t>(H));
    EXPECT_LT(MaxAbsDiff(state, expected_state), 1e-4f) << "target hidden state at " << t - 1;
    int32_t token = prompt[static_cast<size_t>(t)];
    for (int64_t k = 0; k < steps; ++k) {
      const Runner::DraftEntry entry{&session->sequence(), token};
      int32_t drafted = -1;
      ASSERT_TRUE(runner.Draft(std::span<const Runner::DraftEntry>(&entry, 1), state, std::span<int32_t>(&drafted, 1), row).ok());
      const int64_t at = static_cast<int64_t>(r) * steps + k;
      EXPECT_LT(MaxAbsDiff(row, std::span<const float>(logits->values.data() + at * V, static_cast<size_t>(V))), 1e-4f)
          << "logits of round t=" << t << " step " << k;
      EXPECT_LT(MaxAbsDiff(state, std::span<const float>(hidden->values.data() + at * H, static_cast<size_t>(H))), 1e-4f)
          << "post-projection state of round t=" << t << " step " << k;
      EXPECT_EQ(drafted, draft_tokens[r][static_cast<size_t>(k)]) << "round t=" << t << " step " << k;
      EXPECT_EQ(session->length(), t);  // drafting leaves the cache as it was
      token = drafted;
    }
  }
  EXPECT_TRUE(past_window);
}

// "mtp_centroid": e2b's drafter with the E2B/E4B centroid-masked head (every entry of its
// logits compared, the filler of the masked-out tokens included).
INSTANTIATE_TEST_SUITE_P(Fixtures, MtpReferenceTest,
                         ::testing::Values(ReferenceCase{"g31b", "mtp"}, ReferenceCase{"e2b", "mtp"}, ReferenceCase{"e2b", "mtp_centroid"}));

// The centroid-masked head (mtp_copy_centroid: mtp_copy's weights with 16 centroids of 32 tokens,
// the best 4 kept) keeps the dense head's logits (mtp_copy's) of exactly the tokens of 4
// centroids' groups of its token ordering, and gives every other token the least of them minus 1.
TEST(MtpSpeculative, CentroidHeadKeepsTheTokensOfTheBestCentroids) {
  auto dense = LoadWithAssistant("e2b", "mtp_copy", CopyDrafterBounds());
  auto masked = LoadWithAssistant("e2b", "mtp_copy_centroid", CopyDrafterBounds());
  ASSERT_TRUE(dense && masked);
  auto config = ReadJsonFile(AssistantDir("e2b", "mtp_copy_centroid") + "/config.json");
  ASSERT_TRUE(config.has_value());
  const int64_t centroids = (*config)["num_centroids"].get<int64_t>(), top_k = (*config)["centroid_intermediate_top_k"].get<int64_t>();
  // The ordering as the checkpoint stores it (I64), read back through the program's weight.
  std::vector<int32_t> ordering;
  for (size_t i = 0; i < masked->program().weights.size(); ++i) {
    if (masked->program().weights[i].name != "mtp.masked_embedding.token_ordering") continue;
    EXPECT_EQ(masked->program().weights[i].dtype, DType::kI32);
    const std::span<const uint8_t> bytes = masked->WeightBytes()[i];
    ordering.resize(bytes.size() / 4);
    std::memcpy(ordering.data(), bytes.data(), bytes.size());
  }
  const std::vector<int32_t> prompt = FixturePrompt("e2b");
  const int64_t V = static_cast<int64_t>(ordering.size()), per_centroid = V / centroids;
  ASSERT_EQ(V, 512);
  int64_t rounds = 0;
  for (int64_t t : {4, 11, 16}) {  // one prefill chunk each (CopyDrafterBounds)
    std::vector<std::vector<float>> rows;
    for (LoadedModel* model : {dense.get(), masked.get()}) {
      auto session = model->NewSession();
      ASSERT_TRUE(session.has_value());
      std::vector<float> row(static_cast<size_t>(V)), state(static_cast<size_t>(session->runner().hidden_size()));
      ASSERT_TRUE(session->StepInto(std::span<const int32_t>(prompt.data(), static_cast<size_t>(t)), false, row, state).ok());
      const Runner::DraftEntry entry{&session->sequence(), prompt[static_cast<size_t>(t)]};
      int32_t drafted = -1;
      ASSERT_TRUE(session->runner().Draft(std::span<const Runner::DraftEntry>(&entry, 1), state, std::span<int32_t>(&drafted, 1), row).ok());
      EXPECT_EQ(drafted, std::max_element(row.begin(), row.end()) - row.begin());
      rows.push_back(row);
    }
    std::vector<bool> kept(static_cast<size_t>(V), false);
    float least = INFINITY;
    int64_t groups = 0;
    for (int64_t c = 0; c < centroids; ++c) {
      int64_t same = 0;
      for (int64_t j = 0; j < per_centroid; ++j) {
        const int32_t id = ordering[static_cast<size_t>(c * per_centroid + j)];
        same += rows[1][static_cast<size_t>(id)] == rows[0][static_cast<size_t>(id)];
      }
      if (same != per_centroid) continue;  // a group either keeps all its logits or none
      ++groups;
      for (int64_t j = 0; j < per_centroid; ++j) {
        const int32_t id = ordering[static_cast<size_t>(c * per_centroid + j)];
        kept[static_cast<size_t>(id)] = true;
        least = std::min(least, rows[0][static_cast<size_t>(id)]);
      }
    }
    EXPECT_EQ(groups, top_k) << "t=" << t;
    for (int64_t v = 0; v < V; ++v) {
      if (kept[static_cast<size_t>(v)]) continue;
      EXPECT_EQ(rows[1][static_cast<size_t>(v)], least - 1.0f) << "t=" << t << " token " << v;
    }
    ++rounds;
  }
  EXPECT_EQ(rounds, 3);
}

// Greedy and seeded sampling with MTP drafts of 1 to 8 tokens equal plain decoding of the same
// model, on a prompt long enough for rounds to cross the sliding window.
TEST(MtpSpeculative, OutputEqualsPlainDecoding) {
  for (const auto& [target, assistant] : {std::pair<std::string, std::string>{"g31b", "mtp_copy"}, {"e2b", "mtp_copy"}, {"e2b", "mtp_copy_centroid"}}) {
    auto model = LoadWithAssistant(target, assistant, CopyDrafterBounds());
    ASSERT_NE(model, nullptr);
    const std::vector<int32_t> prompt = FixturePrompt(target);
    for (float temperature : {0.0f, 0.9f}) {
      GenerateOptions plain;
      plain.max_new_tokens = 40;
      plain.ignore_eos = true;
      plain.sampling.temperature = temperature;
      plain.sampling.seed = 11;
      const std::vector<int32_t> expected = testing::GenerateAlone(*model, prompt, plain).tokens;
      ASSERT_EQ(expected.size(), 40u);
      for (int k : {1, 2, 4, 8}) {
        GenerateOptions speculative = plain;
        speculative.speculative.type = SpeculativeType::kMtp;
        speculative.speculative.draft_max = k;
        const GenerationResult result = testing::GenerateAlone(*model, prompt, speculative);
        EXPECT_EQ(result.tokens, expected) << target << " k=" << k << " temperature " << temperature;
        EXPECT_GT(result.draft_tokens, 0) << target << " k=" << k;
        EXPECT_GE(result.draft_tokens, result.accepted_draft_tokens);
        EXPECT_EQ(Sum(result.drafted_by_position), result.draft_tokens) << target << " k=" << k;
        EXPECT_EQ(Sum(result.accepted_by_position), result.accepted_draft_tokens) << target << " k=" << k;
      }
    }
  }
}

// Structured output with speculation: every row of a verify step is sampled under the request's
// constraint, so drafts the grammar forbids are rejected and the output is plain constrained
// decoding's, for the MTP drafter and prompt lookup, greedy and seeded, alone and scheduled.
TEST(MtpSpeculative, ConstrainedOutputEqualsPlainConstrainedDecoding) {
  LoadOptions load = CopyDrafterBounds();
  load.max_sequences = 4;
  auto model = LoadWithAssistant("e2b", "mtp_copy", load);
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->architecture().vocab_size();
  const std::vector<int32_t> prompt = FixturePrompt("e2b");
  std::vector<testing::ScheduledCase> cases;
  int64_t drafted = 0;
  for (const std::string pattern : {"[ab01]{4,40}y", "(xa|b0){2,12}[xy]{1,9}"}) {
    for (float temperature : {0.0f, 0.9f}) {
      GenerateOptions plain;
      plain.max_new_tokens = 40;
      plain.sampling.temperature = temperature;
      plain.sampling.seed = 21;
      plain.constraint = testing::SyntheticRegexConstraint(vocab, pattern);
      const std::vector<int32_t> expected = testing::GenerateAlone(*model, prompt, plain).tokens;
      ASSERT_FALSE(expected.empty());
      for (SpeculativeType type : {SpeculativeType::kMtp, SpeculativeType::kNgram}) {
        GenerateOptions speculative = plain;
        speculative.speculative.type = type;
        speculative.speculative.draft_max = 3;
        const GenerationResult result = testing::GenerateAlone(*model, prompt, speculative);
        EXPECT_EQ(result.tokens, expected) << pattern << " " << SpeculativeTypeName(type) << " temperature " << temperature;
        drafted += result.draft_tokens;
        cases.push_back({prompt, speculative, expected, {}});
      }
    }
  }
  EXPECT_GT(drafted, 0);
  auto runner = model->NewRunner();
  ASSERT_TRUE(runner.has_value()) << runner.error().ToString();
  Scheduler scheduler(**runner, nullptr);
  testing::RunScheduled(scheduler, cases);
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(cases[i].got.has_value() && cases[i].got->has_value()) << i;
    EXPECT_EQ((*cases[i].got)->tokens, cases[i].expected) << "scheduled request " << i;
  }
}

// The drafts a speculative run takes are the drafter's from the target's hidden state of the row
// that sampled each round's pending token: a run with a fixed draft size drafts and accepts
// exactly what rounds computed here from plain prefills of the same tokens do. The copy drafter
// (mostly its input token again, a little of the hidden state) is accepted on the targets'
// repeats, so rounds end at every acceptance length.
TEST(MtpSpeculative, DraftsContinueFromTheAcceptedRowsHiddenState) {
  for (const std::string target : {"g31b", "e2b"}) {
    auto model = LoadWithAssistant(target, "mtp_copy", CopyDrafterBounds());
    ASSERT_NE(model, nullptr);
    const std::vector<int32_t> prompt = FixturePrompt(target);
    constexpr int64_t kTokens = 60, kDraft = 3;
    GenerateOptions options;
    options.max_new_tokens = kTokens;
    options.ignore_eos = true;
    const std::vector<int32_t> output = testing::GenerateAlone(*model, prompt, options).tokens;
    options.speculative.type = SpeculativeType::kMtp;
    options.speculative.draft_max = kDraft;
    options.speculative.adaptive = false;
    const GenerationResult speculative = testing::GenerateAlone(*model, prompt, options);
    ASSERT_EQ(speculative.tokens, output) << target;

    std::vector<int32_t> all = prompt;
    all.insert(all.end(), output.begin(), output.end());
    auto session = model->NewSession();
    ASSERT_TRUE(session.has_value());
    const int64_t P = static_cast<int64_t>(prompt.size());
    std::vector<float> logits(static_cast<size_t>(session->vocab_size())), hidden(static_cast<size_t>(session->runner().hidden_size()));
    int64_t drafted = 0, accepted = 0;
    for (int64_t t = P; t - P + 1 < kTokens;) {  // output[t - P] is pending at position t
      session->Reset();
      for (int64_t begin = 0; begin < t; begin += 16) {
        const auto chunk = std::span<const int32_t>(all).subspan(static_cast<size_t>(begin), static_cast<size_t>(std::min<int64_t>(16, t - begin)));
        ASSERT_TRUE(session->StepInto(chunk, false, logits, hidden).ok());
      }
      const int64_t room = std::min(kDraft, kTokens - (t - P + 1) - 1);
      std::vector<int32_t> drafts;
      const MtpJob job{&session->sequence(), all[static_cast<size_t>(t)], hidden, room, &drafts};
      ASSERT_TRUE(DraftWithMtp(session->runner(), std::span<const MtpJob>(&job, 1)).ok());
      int64_t a = 0;
      while (a < room && drafts[static_cast<size_t>(a)] == all[static_cast<size_t>(t + 1 + a)]) ++a;
      drafted += room;
      accepted += a;
      t += a + 1;
    }
    EXPECT_GT(accepted, 0) << target;
    EXPECT_EQ(speculative.draft_tokens, drafted) << target;
    EXPECT_EQ(speculative.accepted_draft_tokens, accepted) << target;
  }
}

// Requests drafting with the assistant, batched with each other and with plain ones, under
// preemption, give what each gives alone without speculation.
TEST(MtpSpeculative, ScheduledRequestsEqualPlainSoloRuns) {
  LoadOptions load;
  load.max_tokens = 16;
  load.max_sequences = 4;
  load.max_context = 96;
  load.kv_block_size = 4;
  auto model = LoadWithAssistant("e2b", "mtp_copy", load);
  ASSERT_NE(model, nullptr);
  load.max_sequences = 1;
  auto solo = LoadedModel::Load(FixtureDir("e2b"), load);
  ASSERT_TRUE(solo.has_value());
  std::vector<testing::ScheduledCase> cases = testing::RandomCases(**solo, 8, 7, 20, 30, [](size_t i, GenerateOptions& options) {
    if (i % 4 == 3) return;  // plain, beside the others
    options.speculative.type = SpeculativeType::kMtp;
    options.speculative.draft_max = 1 + static_cast<int>(i % 5);
  });
  RunnerOptions runner_options;
  runner_options.num_threads = 2;
  runner_options.kv_pool = KvPoolSize::ForSequences(model->program(), 2);  // preemption
  auto runner = model->NewRunner(runner_options);
  ASSERT_TRUE(runner.has_value()) << runner.error().ToString();
  Scheduler scheduler(**runner, nullptr);
  testing::RunScheduled(scheduler, cases);
  int64_t drafted = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(cases[i].got.has_value()) << i;
    ASSERT_TRUE(cases[i].got->has_value()) << cases[i].got->error().ToString();
    EXPECT_EQ((*cases[i].got)->tokens, cases[i].expected) << "request " << i;
    drafted += (*cases[i].got)->draft_tokens;
    // Every round counted by draft position, the one that ended the request too.
    const GenerationResult& result = **cases[i].got;
    EXPECT_EQ(Sum(result.drafted_by_position), result.draft_tokens) << "request " << i;
    EXPECT_EQ(Sum(result.accepted_by_position), result.accepted_draft_tokens) << "request " << i;
  }
  EXPECT_GT(drafted, 0);
  EXPECT_EQ(scheduler.stats().draft_tokens, drafted);
  EXPECT_EQ(Sum(scheduler.stats().drafted_by_position), drafted);
  EXPECT_EQ(Sum(scheduler.stats().accepted_by_position), scheduler.stats().accepted_draft_tokens);
}

TEST(MtpSpeculative, RefusesWhatCannotWork) {
  // No assistant compiled in.
  LoadOptions load;
  load.num_threads = 2;
  auto plain = LoadedModel::Load(FixtureDir("g31b"), load);
  ASSERT_TRUE(plain.has_value());
  auto session = (*plain)->NewSession();
  ASSERT_TRUE(session.has_value());
  Generator generator(*session, nullptr);
  GenerateOptions options;
  options.speculative.type = SpeculativeType::kMtp;
  const std::vector<int32_t> prompt = {2, 10, 11};
  EXPECT_EQ(generator.Generate(prompt, options).error().message(),
            "speculative type mtp needs the model loaded with its MTP assistant (--draft ASSISTANT, or compiled in by kiln compile --draft)");
  auto runner = (*plain)->NewRunner();
  ASSERT_TRUE(runner.has_value());
  Scheduler scheduler(**runner, nullptr);
  Request request;
  request.prompt = prompt;
  request.options = options;
  EXPECT_EQ(scheduler.Check(request).error().code(), ErrorCode::kInvalidArgument);
  std::vector<float> state(4);
  int32_t token = 0;
  EXPECT_EQ((*runner)->Draft({}, state, std::span<int32_t>(&token, 1)).error().code(), ErrorCode::kUnsupported);

  // An assistant made for another target: g12b is wider than g31b.
  load.assistant = AssistantDir("g31b", "mtp_copy");
  auto mismatch = LoadedModel::Load(FixtureDir("g12b"), load);
  ASSERT_FALSE(mismatch.has_value());
  EXPECT_EQ(mismatch.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(mismatch.error().message().find("the MTP assistant does not fit its target: its backbone_hidden_size is 48, the target's hidden size 64"),
            std::string::npos)
      << mismatch.error().message();
  // Not an assistant.
  load.assistant = FixtureDir("g31b");
  auto not_assistant = LoadedModel::Load(FixtureDir("g31b"), load);
  ASSERT_FALSE(not_assistant.has_value());
  EXPECT_EQ(not_assistant.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(not_assistant.error().message().find("is not a Gemma 4 assistant"), std::string::npos) << not_assistant.error().message();
  EXPECT_TRUE(IsMtpAssistant(AssistantDir("g31b", "mtp_copy")));
  EXPECT_FALSE(IsMtpAssistant(FixtureDir("g31b")));
  EXPECT_FALSE(IsMtpAssistant(FixtureDir("g31b") + "/missing"));

  // A draft at position 0 has no cached position to read.
  auto model = LoadWithAssistant("g31b", "mtp_copy");
  ASSERT_NE(model, nullptr);
  auto fresh = model->NewSession();
  ASSERT_TRUE(fresh.has_value());
  std::vector<float> hidden(static_cast<size_t>(fresh->runner().hidden_size()));
  const Runner::DraftEntry entry{&fresh->sequence(), 5};
  EXPECT_EQ(fresh->runner().Draft(std::span<const Runner::DraftEntry>(&entry, 1), hidden, std::span<int32_t>(&token, 1)).error().code(),
            ErrorCode::kOutOfRange);
}

// The public API: speculative "mtp" with the assistant as draft_model gives the plain tokens.
// A centroid head's token ordering that is not a table of 32-bit token ids is refused at load,
// naming the tensor: I64 values past the 32-bit range, floats.
TEST(MtpSpeculative, RefusesBadTokenOrderings) {
  const std::filesystem::path source = AssistantDir("e2b", "mtp_copy_centroid");
  auto weights = Checkpoint::Open(source.string());
  ASSERT_TRUE(weights.has_value());
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kiln_mtp_bad_ordering";
  auto load_with = [&](const std::string& dtype, std::span<const uint8_t> ordering) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(source / "config.json", dir / "config.json");
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, info] : weights->tensors()) {
      if (name == "masked_embedding.token_ordering") {
        tensors.push_back({name, dtype, info.shape, ordering});
      } else {
        tensors.push_back({name, info.dtype_name, info.shape, std::span<const uint8_t>(info.data, info.size_bytes)});
      }
    }
    EXPECT_TRUE(WriteSafetensors((dir / "model.safetensors").string(), tensors).ok());
    LoadOptions load;
    load.num_threads = 1;
    load.assistant = dir.string();
    auto model = LoadedModel::Load(FixtureDir("e2b"), load);
    EXPECT_FALSE(model.has_value());
    return model.has_value() ? std::string() : model.error().message();
  };
  std::vector<int64_t> wide(512);
  std::iota(wide.begin(), wide.end(), 0);
  wide[7] = int64_t{1} << 40;
  const std::string wide_error = load_with("I64", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(wide.data()), wide.size() * 8));
  EXPECT_NE(wide_error.find("tensor 'masked_embedding.token_ordering' (I64) in "), std::string::npos) << wide_error;
  EXPECT_NE(wide_error.find(" holds 1099511627776 at element 7, outside the 32-bit range kiln computes with"), std::string::npos) << wide_error;
  std::vector<float> floats(512, 1.0f);
  EXPECT_NE(load_with("F32", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(floats.data()), floats.size() * 4))
                .find("tensor 'mtp.masked_embedding.token_ordering' is f32, but it is a table of token ids (I32 or I64)"),
            std::string::npos)
      << "an F32 ordering";
  std::filesystem::remove_all(dir);
}

TEST(MtpSpeculative, ModelOptionLoadsTheAssistant) {
  ModelOptions options;
  options.context = 128;
  options.chunk = 16;
  options.parallel = 2;
  options.threads = 2;
  options.speculative = "mtp";
  auto missing = Model::Load(FixtureDir("g31b"), options);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message(), "speculative 'mtp' needs draft_model: the model's MTP assistant checkpoint");
  options.draft_model = AssistantDir("g31b", "mtp_copy");
  options.draft_max = 3;
  auto model = Model::Load(FixtureDir("g31b"), options);
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  options.speculative.clear();
  options.draft_model.clear();
  auto plain = Model::Load(FixtureDir("g31b"), options);
  ASSERT_TRUE(plain.has_value()) << plain.error().ToString();
  GenerationRequest request;
  request.prompt_tokens = {2, 37, 377, 64, 34, 340, 408, 291, 322, 172, 338, 509};
  request.max_tokens = 40;
  request.ignore_eos = true;
  request.sampling = SamplingParams{};  // greedy
  auto expected = (*plain)->Generate(request);
  auto got = (*model)->Generate(request);
  ASSERT_TRUE(expected.has_value() && got.has_value()) << (got.has_value() ? expected.error().ToString() : got.error().ToString());
  EXPECT_EQ(got->tokens, expected->tokens);
  EXPECT_GT(got->draft_tokens, 0);
  EXPECT_EQ((*model)->stats().draft_tokens, got->draft_tokens);
}

}  // namespace
}  // namespace kiln
