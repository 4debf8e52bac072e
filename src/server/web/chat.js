// kiln's chat page: one conversation with the served model over the OpenAI chat API, streamed.
// Plain browser JavaScript, no dependencies. Model output is only ever set as textContent.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = 'kiln.apiKey';

// The conversation as the API takes it: user and assistant turns, without reasoning (Gemma 4's
// rule: earlier turns' thoughts are dropped). The system prompt is added per request.
let history = [];
let modelName = null;   // from GET /v1/models; null until it answered
let controller = null;  // the AbortController of the stream in progress

// Paths are relative so that the page also works behind a proxy that serves it under a prefix.
function apiHeaders() {
  const headers = { 'Content-Type': 'application/json' };
  const key = $('api-key').value.trim();
  if (key) headers['Authorization'] = 'Bearer ' + key;
  return headers;
}

// The message of an OpenAI error body ({"error": {"message"}}), or what the answer was.
async function errorText(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error) return `${response.status}: ${body.error.message || body.error}`;
  } catch (_) { /* not JSON: shown as is */ }
  return `${response.status}: ${text || response.statusText}`;
}

async function loadModel() {
  $('status').textContent = '';
  try {
    const response = await fetch('v1/models', { headers: apiHeaders() });
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    modelName = body.data && body.data.length ? body.data[0].id : null;
    $('model').textContent = modelName || 'no model';
  } catch (error) {
    modelName = null;
    $('model').textContent = 'no model';
    $('status').textContent = 'Models: ' + error.message;
  }
}

// A new element; `text` is set as textContent, never parsed as HTML.
function element(tag, className, text = '') {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

function addMessage(role, text) {
  const div = element('div', 'message ' + role);
  div.append(element('div', 'content', text));
  $('messages').append(div);
  div.scrollIntoView({ block: 'end' });
  return div;
}

// The request body from the settings; empty fields leave the server's (the model's) defaults.
function requestBody() {
  const messages = [];
  const system = $('system').value.trim();
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...history);
  const body = { messages, stream: true, stream_options: { include_usage: true } };
  if (modelName) body.model = modelName;
  const temperature = $('temperature').value;
  if (temperature !== '') body.temperature = Number(temperature);
  const maxTokens = $('max-tokens').value;
  if (maxTokens !== '') body.max_tokens = Number(maxTokens);
  if ($('thinking').checked) body.enable_thinking = true;
  return body;
}

// Yields the data of each server-sent event as it completes. Network chunks split events (and
// UTF-8 characters) anywhere, so bytes are decoded in stream mode and text is buffered up to a
// blank line. Comment lines (": ping", sent while the request waits) carry no data.
async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split('\n').filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5)).join('\n');
      if (data) yield data;
    }
  }
}

async function send(text) {
  // This turn's conversation: "New conversation" replaces `history`, and a stream it aborts
  // must not add its reply to the new one.
  const turns = history;
  turns.push({ role: 'user', content: text });
  addMessage('user', text);
  const reply = addMessage('assistant', '');
  const content = reply.querySelector('.content');
  let reasoning = null;  // the <details> element, made when the first thought arrives
  const stats = element('div', 'stats');
  reply.append(stats);

  controller = new AbortController();
  $('send').disabled = true;
  $('stop').disabled = false;
  const started = performance.now();
  let firstToken = null;  // when the first text (content or reasoning) arrived
  let usage = null;
  let finish = null;
  try {
    const response = await fetch('v1/chat/completions', {
      method: 'POST', headers: apiHeaders(), body: JSON.stringify(requestBody()), signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorText(response));
    for await (const data of sseData(response)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || 'the server reported an error');
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      if (choice.finish_reason) finish = choice.finish_reason;
      const delta = choice.delta || {};
      const thought = delta.reasoning_content ?? delta.reasoning;
      if (thought) {
        if (!reasoning) {
          // Collapsed by default: the thought is there to inspect, the answer is what matters.
          reasoning = element('details', 'reasoning');
          reasoning.append(element('summary', '', 'Reasoning'), element('div', ''));
          reply.insertBefore(reasoning, content);
        }
        reasoning.querySelector('div').textContent += thought;
      }
      if (delta.content) content.textContent += delta.content;
      if ((thought || delta.content) && firstToken === null) firstToken = performance.now();
      reply.scrollIntoView({ block: 'end' });
    }
    const ended = performance.now();
    // Decode speed: tokens over the time from the first token to the end (the prefill before
    // the first token is not decoding).
    if (usage) {
      const seconds = (ended - (firstToken ?? started)) / 1000;
      stats.append(`${usage.completion_tokens} tokens`);
      if (seconds > 0) {
        stats.append(' · ', element('span', 'tps', (usage.completion_tokens / seconds).toFixed(1)), ' tokens/s');
      }
    }
    if (finish === 'length') stats.append(' · stopped at the token limit');
    if (finish === 'error') stats.append(element('span', 'error', ' · the model failed while generating'));
    turns.push({ role: 'assistant', content: content.textContent });
  } catch (error) {
    if (error.name === 'AbortError') {
      stats.textContent = 'stopped';
      // What was shown is the assistant's turn: the conversation goes on from it.
      turns.push({ role: 'assistant', content: content.textContent });
    } else {
      reply.append(element('div', 'error', error.message));
      turns.pop();  // the turn failed: it is not part of the conversation
      reply.previousElementSibling?.classList.add('failed');  // the user's message
    }
  } finally {
    reply.dataset.done = 'true';  // for tests and scripts: this reply is over
    controller = null;
    $('send').disabled = false;
    $('stop').disabled = true;
  }
}

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('input').value;
  if (!text.trim() || controller) return;
  $('input').value = '';
  send(text);
});
// Enter sends, Shift+Enter starts a new line.
$('input').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => { if (controller) controller.abort(); });
$('clear').addEventListener('click', () => {
  if (controller) controller.abort();
  history = [];
  $('messages').replaceChildren();
});
// The key stays in this browser (localStorage) so that a reload does not ask again.
$('api-key').value = localStorage.getItem(KEY_STORAGE) || '';
$('api-key').addEventListener('change', () => {
  const key = $('api-key').value.trim();
  if (key) localStorage.setItem(KEY_STORAGE, key); else localStorage.removeItem(KEY_STORAGE);
  loadModel();
});
loadModel();
