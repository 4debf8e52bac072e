// The public API (include/kiln/kiln.h) over the engine: a LoadedModel placed once (Runner), a
// Scheduler driven by its own thread, the model's text side for prompts and stops.
#include <condition_variable>
#include <future>
#include <mutex>

#include "constraint/vocabulary.h"

#include "engine/model_loader.h"
#include "engine/model_text.h"
#include "engine/scheduler.h"
#include "kiln/kiln.h"

namespace kiln {

struct Model::Impl {
  std::unique_ptr<LoadedModel> model;
  ModelText text;
  std::unique_ptr<Runner> runner;
  std::unique_ptr<DraftModel> draft;     // speculative "draft": outlives the scheduler
  std::unique_ptr<Scheduler> scheduler;  // declared last: stopped and destroyed first
  ModelOptions options;
  std::string path;
  // The vocabulary's byte trie for structured output, built on first use.
  mutable std::mutex vocabulary_mutex;
  mutable std::shared_ptr<const constraint::TokenVocabulary> vocabulary;

  Result<std::shared_ptr<const constraint::TokenVocabulary>> Vocabulary() const {
    std::lock_guard<std::mutex> lock(vocabulary_mutex);
    if (!vocabulary) {
      TRY_ASSIGN(const tokenizer::ModelTokenizer* tok, text.RequireTokenizer());
      TRY_ASSIGN(vocabulary, constraint::TokenVocabulary::FromTokenizer(tok->tokenizer, text.stop_token_ids));
    }
    return vocabulary;
  }

  const tokenizer::Tokenizer* tokenizer() const { return text.tokenizer ? &text.tokenizer->tokenizer : nullptr; }

  // The engine's request for a public one (callbacks not yet attached).
  Result<Request> Prepare(const GenerationRequest& request) const {
    Request prepared;
    TRY_ASSIGN(prepared.prompt, PromptOf(request));
    GenerateOptions& options = prepared.options;
    options.max_new_tokens = request.max_tokens;
    options.stop_token_ids = text.stop_token_ids;
    options.ignore_eos = request.ignore_eos;
    options.stop_strings = request.stop;
    options.top_logprobs = request.top_logprobs;
    options.skip_special_tokens = !request.keep_special_tokens;
    if (request.sampling) {
      const SamplingParams& s = *request.sampling;
      options.sampling = {s.temperature, s.top_k, s.top_p, s.min_p, s.repetition_penalty, s.repetition_window,
                          s.seed, s.presence_penalty, s.frequency_penalty};
    } else {
      options.sampling = text.default_sampling;
    }
    ConstraintSource source{request.json_schema, request.regex, request.grammar, request.json_object};
    if (!source.empty()) {
      TRY_ASSIGN(options.constraint.grammar, CompileConstraint(source));
      TRY_ASSIGN(options.constraint.vocabulary, Vocabulary());
    }
    return prepared;
  }

  Result<std::vector<int32_t>> PromptOf(const GenerationRequest& request) const {
    const int sources = !request.prompt_tokens.empty() + !request.prompt.empty() + !request.messages.empty();
    if (sources != 1) {
      return Error(ErrorCode::kInvalidArgument, "give exactly one of prompt_tokens, prompt, messages (" + std::to_string(sources) + " given)");
    }
    if (!request.prompt_tokens.empty()) return request.prompt_tokens;
    TRY_ASSIGN(const tokenizer::ModelTokenizer* tok, text.RequireTokenizer());
    if (!request.prompt.empty()) return EncodePlain(*tok, request.prompt);
    TRY_ASSIGN(nlohmann::ordered_json messages, MessagesJson(request.messages));
    if (request.tools.empty() && request.chat_template_kwargs.empty()) return EncodeChat(*tok, messages);
    if (!tok->chat_template) {
      return Error(ErrorCode::kInvalidArgument, "tools and chat template variables need the model's chat template; " +
                                                    text.model_name + " has none");
    }
    tokenizer::ChatRequest chat;
    chat.messages = std::move(messages);
    if (!request.tools.empty()) {
      chat.tools = nlohmann::ordered_json::parse(request.tools, nullptr, /*allow_exceptions=*/false);
      if (!chat.tools.is_array()) return Error(ErrorCode::kInvalidArgument, "tools must be a JSON array of tool definitions");
    }
    if (!request.chat_template_kwargs.empty()) {
      chat.extra_context = nlohmann::ordered_json::parse(request.chat_template_kwargs, nullptr, /*allow_exceptions=*/false);
      if (!chat.extra_context.is_object()) return Error(ErrorCode::kInvalidArgument, "chat template variables must be a JSON object");
    }
    chat.add_generation_prompt = true;
    TRY_ASSIGN(std::string rendered, tok->chat_template->Render(chat));
    return tok->tokenizer.Encode(rendered, {.add_special_tokens = false});
  }

  // The conversation as chat templates read it (OpenAI's message shape). A tool call's
  // arguments go in as an object: templates (Gemma 4's) write each argument in their own syntax.
  static Result<nlohmann::ordered_json> MessagesJson(const std::vector<ChatMessage>& chat) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    for (const ChatMessage& m : chat) {
      if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool") {
        return Error(ErrorCode::kInvalidArgument, "message role must be system, user, assistant or tool, got '" + m.role + "'");
      }
      nlohmann::ordered_json message = {{"role", m.role}, {"content", m.content}};
      if (!m.reasoning.empty()) message["reasoning"] = m.reasoning;
      if (!m.tool_calls.empty()) {
        nlohmann::ordered_json calls = nlohmann::ordered_json::array();
        for (const ToolCall& call : m.tool_calls) {
          nlohmann::ordered_json arguments = nlohmann::ordered_json::parse(call.arguments, nullptr, /*allow_exceptions=*/false);
          if (!arguments.is_object()) {
            return Error(ErrorCode::kInvalidArgument, "the arguments of tool call '" + call.name + "' must be a JSON object");
          }
          calls.push_back({{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", arguments}}}});
        }
        message["tool_calls"] = std::move(calls);
      }
      if (!m.tool_call_id.empty()) message["tool_call_id"] = m.tool_call_id;
      if (!m.name.empty()) message["name"] = m.name;
      messages.push_back(std::move(message));
    }
    return messages;
  }
};

namespace {

Completion ToCompletion(RequestId id, const Result<GenerationResult>& result) {
  Completion completion;
  completion.id = id;
  if (!result.has_value()) {
    completion.error = result.error();
    return completion;
  }
  completion.tokens = result->tokens;
  completion.text = result->text;
  completion.stop_reason = StopReasonName(result->stop_reason);
  completion.stop_string = result->stop_string;
  completion.prompt_tokens = result->prompt_tokens;
  completion.cached_tokens = result->reused_tokens;
  completion.prompt_seconds = result->prefill_seconds;
  completion.draft_tokens = result->draft_tokens;
  completion.accepted_draft_tokens = result->accepted_draft_tokens;
  completion.first_token_seconds = result->first_token_seconds;
  completion.generation_seconds = result->decode_seconds;
  return completion;
}

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Model::~Model() {
  if (impl_ && impl_->scheduler) impl_->scheduler->Stop();
}

Result<std::unique_ptr<Model>> Model::Load(const std::string& path, const ModelOptions& options) {
  if (options.parallel < 1 || options.parallel > options.chunk) {
    return Error(ErrorCode::kInvalidArgument, "parallel must be in [1, chunk " + std::to_string(options.chunk) + "], got " +
                                                  std::to_string(options.parallel));
  }
  if (!options.kv_cache.empty() && options.kv_cache != "f32" && options.kv_cache != "bf16") {
    return Error(ErrorCode::kInvalidArgument, "kv_cache must be f32 or bf16, got '" + options.kv_cache + "'");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->path = path;
  LoadOptions load;
  load.device = options.device;
  load.max_context = options.context;
  load.max_tokens = std::min(options.chunk, options.context);
  load.max_sequences = options.parallel;
  load.num_threads = options.threads;
  if (!options.kv_cache.empty()) load.kv_cache_dtype = options.kv_cache == "f32" ? DType::kF32 : DType::kBF16;
  if (!options.quant.empty()) {
    const std::optional<QuantRecipe> recipe = QuantRecipeFromName(options.quant);
    if (!recipe) return Error(ErrorCode::kInvalidArgument, "quant must be one of " + QuantRecipeNames() + ", got '" + options.quant + "'");
    load.quant = *recipe;
  }
  SchedulerOptions scheduler;
  scheduler.prefix_cache = options.prefix_cache;
  const std::string speculative = options.speculative.empty() && !options.draft_model.empty() ? "draft" : options.speculative;
  if (!speculative.empty() && speculative != "none") {
    TRY_ASSIGN(scheduler.speculative.type, ParseSpeculativeType(speculative));
    scheduler.speculative.draft_max = options.draft_max;
    TRY(scheduler.speculative.Validate());
  }
  const bool needs_draft = scheduler.speculative.type == SpeculativeType::kDraft || scheduler.speculative.type == SpeculativeType::kMtp;
  if (needs_draft && options.draft_model.empty()) {
    return Error(ErrorCode::kInvalidArgument, scheduler.speculative.type == SpeculativeType::kMtp
                                                  ? "speculative 'mtp' needs draft_model: the model's MTP assistant checkpoint"
                                                  : "speculative 'draft' needs draft_model: a smaller model with the same vocabulary");
  }
  if (!needs_draft && !options.draft_model.empty()) {
    return Error(ErrorCode::kInvalidArgument, "draft_model drafts with speculative 'draft' or 'mtp', not '" + speculative + "'");
  }
  // An MTP assistant is compiled into this model's Program; a draft model runs on its own.
  if (scheduler.speculative.type == SpeculativeType::kMtp) load.assistant = options.draft_model;
  TRY_ASSIGN(impl->model, LoadedModel::Load(path, load));
  TRY_ASSIGN(impl->text, LoadModelText(*impl->model));
  TRY_ASSIGN(impl->runner, impl->model->NewRunner());
  if (scheduler.speculative.type == SpeculativeType::kDraft) {
    LoadOptions draft_load = load;
    draft_load.device = impl->model->device();
    TRY_ASSIGN(std::unique_ptr<LoadedModel> draft, LoadedModel::Load(options.draft_model, draft_load));
    if (const tokenizer::Tokenizer* target_tokenizer = impl->tokenizer()) {
      // Same size first (DraftModel::Create), then the same tokens where both tokenizers are known.
      if (draft->architecture().vocab_size() == impl->runner->vocab_size()) {
        TRY_ASSIGN(ModelText draft_text, LoadModelText(*draft));
        if (draft_text.tokenizer) TRY(CheckDraftTokenizer(*target_tokenizer, draft_text.tokenizer->tokenizer, options.draft_model));
      }
    }
    TRY_ASSIGN(impl->draft, DraftModel::Create(std::move(draft), impl->runner->vocab_size()));
    scheduler.draft_model = impl->draft.get();
  }
  impl->scheduler = std::make_unique<Scheduler>(*impl->runner, impl->tokenizer(), scheduler);
  impl->scheduler->Start();
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

Status Model::Validate(const GenerationRequest& request) const {
  TRY_ASSIGN(Request prepared, impl_->Prepare(request));
  return impl_->scheduler->Check(prepared);
}

Result<RequestId> Model::Submit(GenerationRequest request) {
  TRY_ASSIGN(Request prepared, impl_->Prepare(request));
  if (request.on_token) {
    prepared.options.on_token = [on_token = std::move(request.on_token)](const GeneratedToken& token) {
      TokenEvent event;
      event.id = token.id;
      event.text = token.text;
      event.index = token.index;
      event.logprob = token.logprob;
      for (const TokenLogprob& top : token.top_logprobs) event.top_logprobs.emplace_back(top.id, top.logprob);
      on_token(event);
    };
  }
  prepared.on_done = [on_done = std::move(request.on_done)](RequestId id, Result<GenerationResult> result) {
    if (on_done) on_done(ToCompletion(id, result));
  };
  return impl_->scheduler->Submit(std::move(prepared));
}

void Model::Cancel(RequestId id) { impl_->scheduler->Cancel(id); }

Result<Completion> Model::Generate(GenerationRequest request) {
  auto promise = std::make_shared<std::promise<Completion>>();
  std::future<Completion> future = promise->get_future();
  auto user_done = std::move(request.on_done);
  request.on_done = [promise, user_done](const Completion& completion) {
    if (user_done) user_done(completion);
    promise->set_value(completion);
  };
  TRY(impl_->scheduler != nullptr ? Status::Ok() : Error(ErrorCode::kInternal, "model has no scheduler"));
  TRY_ASSIGN(RequestId id, Submit(std::move(request)));
  (void)id;
  Completion completion = future.get();
  if (completion.error) return *completion.error;
  return completion;
}

Result<std::vector<int32_t>> Model::Tokenize(const std::string& text) const {
  TRY_ASSIGN(const tokenizer::ModelTokenizer* tok, impl_->text.RequireTokenizer());
  return EncodePlain(*tok, text);
}

Result<std::vector<int32_t>> Model::ApplyChatTemplate(const std::vector<ChatMessage>& messages) const {
  GenerationRequest request;
  request.messages = messages;
  return impl_->PromptOf(request);
}

Result<std::string> Model::Detokenize(std::span<const int32_t> ids) const {
  TRY_ASSIGN(const tokenizer::ModelTokenizer* tok, impl_->text.RequireTokenizer());
  const int64_t vocab = impl_->runner->vocab_size();
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab) {
      return Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  return tok->tokenizer.Decode(std::vector<int32_t>(ids.begin(), ids.end()), /*skip_special_tokens=*/true);
}

ModelInfo Model::info() const {
  const Program& program = impl_->model->program();
  ModelInfo info;
  info.path = impl_->path;
  info.device = impl_->model->device();
  info.target = program.target;
  info.architecture = impl_->model->architecture().Summary();
  info.context = program.max_context;
  info.chunk = program.max_tokens;
  info.parallel = program.max_sequences;
  info.vocab_size = impl_->runner->vocab_size();
  info.stop_token_ids = impl_->text.stop_token_ids;
  const SamplingOptions& d = impl_->text.default_sampling;
  info.default_sampling = {d.temperature, d.top_k, d.top_p, d.min_p, d.repetition_penalty, d.repetition_window,
                           d.seed, d.presence_penalty, d.frequency_penalty};
  info.has_tokenizer = impl_->text.tokenizer.has_value();
  info.has_chat_template = info.has_tokenizer && impl_->text.tokenizer->chat_template.has_value();
  const MemoryReport memory = impl_->runner->memory();
  info.weight_bytes = memory.weight_bytes > 0 ? memory.weight_bytes : program.weight_bytes();
  info.kv_pool_bytes = memory.cache_bytes;
  return info;
}

ModelStats Model::stats() const {
  const SchedulerStats s = impl_->scheduler->stats();
  return {s.waiting,       s.running,       s.finished,         s.cancelled,    s.preemptions,           s.prompt_tokens, s.cached_tokens,
          s.generated_tokens, s.draft_tokens, s.accepted_draft_tokens, s.steps, s.prompt_steps, s.step_rows,
          s.drafted_by_position, s.accepted_by_position, s.draft_cached_tokens};
}

}  // namespace kiln
