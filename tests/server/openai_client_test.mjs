// The official `openai` npm client against a running kiln serve: chat and completions, whole and
// streamed, json_object output, and a bad request surfacing as the client's BadRequestError.
// Usage: node openai_client_test.mjs http://127.0.0.1:PORT/v1   (with `openai` resolvable)
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.argv[2], apiKey: 'unused', maxRetries: 0 });
const messages = [{ role: 'user', content: 'Tell me about the jury.' }];

const models = await client.models.list();
assert.equal(models.data[0].id, 'brown-gemma4');

const whole = await client.chat.completions.create({ model: 'brown-gemma4', messages, max_tokens: 16, temperature: 0 });
assert.equal(whole.object, 'chat.completion');
assert.equal(whole.choices[0].message.role, 'assistant');
assert.ok(whole.choices[0].message.content.length > 0);
assert.ok(['stop', 'length'].includes(whole.choices[0].finish_reason));
assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);

const stream = await client.chat.completions.create({
  model: 'brown-gemma4', messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let streamed = '';
let finish = null;
let usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    streamed += choice.delta.content ?? '';
    if (choice.finish_reason) finish = choice.finish_reason;
  }
}
assert.equal(streamed, whole.choices[0].message.content);
assert.equal(finish, whole.choices[0].finish_reason);
assert.equal(usage.completion_tokens, whole.usage.completion_tokens);

const completion = await client.completions.create({ model: 'brown-gemma4', prompt: 'The jury said', max_tokens: 12, temperature: 0 });
assert.equal(completion.object, 'text_completion');
assert.ok(completion.choices[0].text.length > 0);

const json = await client.chat.completions.create({
  model: 'brown-gemma4', messages, max_tokens: 200, temperature: 0, response_format: { type: 'json_object' },
});
const content = json.choices[0].message.content;
assert.ok(content.trimStart().startsWith('{'), content);
if (json.choices[0].finish_reason === 'stop') JSON.parse(content);

await assert.rejects(
  client.chat.completions.create({ model: 'brown-gemma4', messages, temperature: 5 }),
  (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError, String(error));
    assert.equal(error.status, 400);
    assert.match(error.message, /'temperature' must be in \[0\.0, 2\.0\], got 5/);
    return true;
  });
console.log('openai client: all checks passed');
