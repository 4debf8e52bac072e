// The `ollama` npm client (the Ollama JS library) against a running kiln serve: generate and chat,
// whole and streamed, format json, the model routes, and an error surfacing as ResponseError.
// Usage: node ollama_client_test.mjs http://127.0.0.1:PORT   (with `ollama` resolvable)
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';

const ollama = new Ollama({ host: process.argv[2] });
const model = 'brown-gemma4:latest';
const options = { temperature: 0, num_predict: 16 };

const list = await ollama.list();
assert.equal(list.models[0].name, model);
const running = await ollama.ps();
assert.equal(running.models[0].name, model);
const shown = await ollama.show({ model });
assert.ok(shown.capabilities.includes('completion'));
assert.match((await ollama.version()).version, /^\d+\.\d+\.\d+$/);

const whole = await ollama.generate({ model, prompt: 'The jury said', options });
assert.equal(whole.done, true);
assert.ok(whole.response.length > 0);
assert.ok(['stop', 'length'].includes(whole.done_reason));
assert.ok(whole.eval_count > 0 && whole.total_duration > 1000);

let streamed = '';
let last = null;
for await (const part of await ollama.generate({ model, prompt: 'The jury said', options, stream: true })) {
  streamed += part.response;
  last = part;
}
assert.equal(streamed, whole.response);
assert.equal(last.done, true);
assert.equal(last.eval_count, whole.eval_count);

const messages = [{ role: 'user', content: 'Tell me about the jury.' }];
const chat = await ollama.chat({ model, messages, options });
assert.equal(chat.message.role, 'assistant');
let chatStreamed = '';
for await (const part of await ollama.chat({ model, messages, options, stream: true })) chatStreamed += part.message.content;
assert.equal(chatStreamed, chat.message.content);

const json = await ollama.generate({ model, prompt: 'Give JSON:', format: 'json', options: { temperature: 0, num_predict: 200 } });
assert.ok(json.response.trimStart().startsWith('{'), json.response);
if (json.done_reason === 'stop') JSON.parse(json.response);

await assert.rejects(ollama.chat({ model: 'llama3', messages }), (error) => {
  assert.equal(error.name, 'ResponseError');
  assert.equal(error.status_code, 404);
  assert.match(error.error, /model 'llama3' not found/);
  return true;
});
console.log('ollama client: all checks passed');
