// The chat page at / in headless Chromium (puppeteer-core), against `kiln serve` on the bundled
// model. Run by web_page_test.sh:
//   node web_page_test.mjs OPEN_URL KEYED_URL API_KEY   (KEYED_URL's server has --api-key API_KEY)
// Checks, as a user would see it: the page loads with no console errors and no request to
// another origin; a message streams back a reply equal to the unstreamed answer at temperature 0
// (two turns: the conversation is kept); tokens/s is shown; Stop ends a stream (and the server
// cancels it); reasoning is collapsed and model text is never markup; with an API key the page
// still loads, a request without the key shows the 401, and the pasted key works and is kept.
import assert from 'node:assert/strict';
import puppeteer from 'puppeteer-core';

const [openUrl, keyedUrl, apiKey] = process.argv.slice(2);

// Records what must not happen on a page: console errors (except the expected ones), uncaught
// exceptions, and requests that leave the page's origin. Also keeps the chat request bodies.
function watch(page, origin, allowedConsole = []) {
  const seen = { problems: [], chatBodies: [] };
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (allowedConsole.some((pattern) => pattern.test(message.text()))) return;
    seen.problems.push('console error: ' + message.text());
  });
  page.on('pageerror', (error) => seen.problems.push('page error: ' + error.message));
  page.on('request', (request) => {
    const url = request.url();
    if (url.startsWith('data:')) return;  // the empty favicon: no network
    if (new URL(url).origin !== origin) seen.problems.push('request to another origin: ' + url);
    if (url.endsWith('/v1/chat/completions')) seen.chatBodies.push(JSON.parse(request.postData()));
  });
  return seen;
}

async function openPage(browser, url, allowedConsole) {
  const page = await browser.newPage();
  page.setDefaultTimeout(60000);
  const seen = watch(page, url, allowedConsole);
  const response = await page.goto(url + '/', { waitUntil: 'load' });
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-type'], /^text\/html/);
  return { page, seen };
}

const text = (page, selector) => page.$eval(selector, (node) => node.textContent);
const lastReply = '.message.assistant:last-child';

// Types `message`, sends it, and waits until the reply is over; returns how many different
// lengths the reply's text had while it streamed (more than 2: it grew piece by piece).
async function sendAndWait(page, message, { withEnter = false } = {}) {
  const replies = await page.$$eval('.message.assistant', (nodes) => nodes.length);
  await page.evaluate(() => {
    window.lengthsSeen = new Set();
    const observer = new MutationObserver(() => {
      const content = document.querySelector('.message.assistant:last-child .content');
      if (content) window.lengthsSeen.add(content.textContent.length);
    });
    observer.observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
  });
  await page.type('#input', message);
  if (withEnter) await page.keyboard.press('Enter'); else await page.click('#send');
  await page.waitForFunction((n) => document.querySelectorAll('.message.assistant[data-done]').length === n + 1, {}, replies);
  return page.evaluate(() => window.lengthsSeen.size);
}

async function openSettings(page) {
  const open = await page.$eval('#settings', (node) => node.open);
  if (!open) await page.click('#settings summary');
}

// The unstreamed answer to the body the page sent.
async function unstreamed(url, body, headers = {}) {
  const { stream, stream_options, ...rest } = body;
  const response = await fetch(url + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(rest),
  });
  assert.equal(response.status, 200);
  return (await response.json()).choices[0].message.content;
}

async function assertTokensPerSecond(page) {
  const tps = await text(page, `${lastReply} .tps`);
  assert.match(tps, /^\d+(\.\d+)?$/, `tokens/s shows '${tps}'`);
  assert.ok(Number(tps) > 0);
}

async function chatTwoTurns(browser) {
  const { page, seen } = await openPage(browser, openUrl);
  const models = await (await fetch(openUrl + '/v1/models')).json();
  await page.waitForFunction((id) => document.getElementById('model').textContent === id, {}, models.data[0].id);
  await openSettings(page);
  await page.type('#temperature', '0');
  await page.type('#max-tokens', '24');

  const lengths = await sendAndWait(page, 'Tell me about the jury.');
  const first = seen.chatBodies[0];
  assert.equal(first.stream, true);
  assert.deepEqual(first.stream_options, { include_usage: true });
  assert.equal(first.temperature, 0);
  assert.equal(first.max_tokens, 24);
  assert.deepEqual(first.messages, [{ role: 'user', content: 'Tell me about the jury.' }]);
  const reply = await text(page, `${lastReply} .content`);
  assert.notEqual(reply, '');
  assert.equal(reply, await unstreamed(openUrl, first));
  assert.ok(lengths > 2, `the reply appeared at once (${lengths} lengths), not streamed`);
  assert.equal(await page.$(`${lastReply} .error`), null);
  await assertTokensPerSecond(page);

  // The second turn carries the first: the same answer as the whole conversation unstreamed.
  await sendAndWait(page, 'And then?', { withEnter: true });
  const second = seen.chatBodies[1];
  assert.deepEqual(second.messages, [{ role: 'user', content: 'Tell me about the jury.' },
                                     { role: 'assistant', content: reply },
                                     { role: 'user', content: 'And then?' }]);
  const reply2 = await text(page, `${lastReply} .content`);
  assert.notEqual(reply2, '');
  assert.equal(reply2, await unstreamed(openUrl, second));
  await assertTokensPerSecond(page);
  assert.deepEqual(seen.problems, []);
  await page.close();
}

// Without max tokens the bundled model writes up to the context (many seconds): Stop ends it.
async function stopAStream(browser) {
  const { page, seen } = await openPage(browser, openUrl);
  const cancelled = async () => {
    const metrics = await (await fetch(openUrl + '/metrics')).text();
    return Number(metrics.match(/^kiln_requests_cancelled_total (\d+)/m)[1]);
  };
  const before = await cancelled();
  await page.type('#input', 'Tell me a long story.');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelector('.message.assistant .content').textContent.length > 0);
  await page.click('#stop');
  await page.waitForSelector('.message.assistant[data-done]');
  assert.equal(await text(page, `${lastReply} .stats`), 'stopped');
  assert.equal(await page.$eval('#send', (node) => node.disabled), false);
  // The aborted fetch closed the connection: the server cancels the generation.
  for (let i = 0; i < 100 && (await cancelled()) === before; ++i) await new Promise((done) => setTimeout(done, 100));
  assert.equal(await cancelled(), before + 1);
  assert.deepEqual(seen.problems, []);
  await page.close();
}

// A stream with reasoning and markup in the content, answered by the test instead of the server.
async function reasoningAndMarkup(browser) {
  const { page, seen } = await openPage(browser, openUrl);
  await page.setRequestInterception(true);
  const chunk = (delta, finish = null) => ({ choices: [{ index: 0, delta, finish_reason: finish }] });
  const events = [chunk({ role: 'assistant', content: '' }), chunk({ reasoning_content: 'Think ', reasoning: 'Think ' }),
                  chunk({ reasoning_content: 'twice.', reasoning: 'twice.' }), chunk({ content: '<b>bold</b> ' }),
                  chunk({ content: 'and <img src=x onerror=alert(1)> é' }), chunk({}, 'stop'),
                  { choices: [], usage: { prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 } }];
  const body = ': ping\n\n' + events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n';
  page.on('request', (request) => {
    if (!request.url().endsWith('/v1/chat/completions')) return request.continue();
    request.respond({ status: 200, contentType: 'text/event-stream', body });
  });
  await sendAndWait(page, 'hi');
  const reasoning = await page.$eval(`${lastReply} details.reasoning`,
                                     (node) => ({ open: node.open, text: node.querySelector('div').textContent }));
  assert.deepEqual(reasoning, { open: false, text: 'Think twice.' });
  assert.equal(await text(page, `${lastReply} .content`), '<b>bold</b> and <img src=x onerror=alert(1)> é');
  assert.equal(await page.$(`${lastReply} .content b, ${lastReply} .content img`), null);
  await assertTokensPerSecond(page);
  assert.deepEqual(seen.problems, []);
  await page.close();
}

async function withApiKey(browser) {
  // The browser reports each refused request (401) as a console error: those are expected here.
  const refused = [/status of 401/];
  let { page, seen } = await openPage(browser, keyedUrl, refused);
  await page.waitForFunction(() => document.getElementById('status').textContent.includes('401'));
  await sendAndWait(page, 'Hello there.');
  const error = await text(page, `${lastReply} .error`);
  assert.match(error, /^401: missing or wrong API key/);
  assert.ok(await page.$eval('.message.user', (node) => node.classList.contains('failed')));

  await openSettings(page);
  await page.type('#api-key', apiKey);
  await page.keyboard.press('Tab');  // 'change' fires when the field loses focus
  await page.waitForFunction(() => document.getElementById('model').textContent === 'brown-gemma4');
  assert.equal(await text(page, '#status'), '');
  await page.type('#max-tokens', '8');
  await sendAndWait(page, 'Hello there.');
  assert.equal(await page.$(`${lastReply} .error`), null);
  assert.notEqual(await text(page, `${lastReply} .content`), '');
  await assertTokensPerSecond(page);
  // The failed turn is not part of the conversation.
  assert.deepEqual(seen.chatBodies.at(-1).messages, [{ role: 'user', content: 'Hello there.' }]);
  assert.deepEqual(seen.problems, []);
  await page.close();

  // A new page on the same origin finds the key in localStorage.
  ({ page, seen } = await openPage(browser, keyedUrl, []));
  await page.waitForFunction(() => document.getElementById('model').textContent === 'brown-gemma4');
  assert.equal(await page.$eval('#api-key', (node) => node.value), apiKey);
  assert.deepEqual(seen.problems, []);
  await page.close();
}

let browser;
try {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
} catch (error) {
  // A browser that cannot start here (a broken or partial install) says nothing about the page.
  console.log(`SKIP: chromium did not start: ${error.message}`);
  process.exit(77);
}
try {
  for (const [name, run] of [['chat, two turns', chatTwoTurns], ['stop', stopAStream],
                             ['reasoning and markup', reasoningAndMarkup], ['API key', withApiKey]]) {
    await run(browser);
    console.log(`ok: ${name}`);
  }
} finally {
  await browser.close();
}
