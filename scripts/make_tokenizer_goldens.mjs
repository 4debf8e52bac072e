#!/usr/bin/env node
// Writes tests/tokenizer/goldens/<name>.json: exact token ids from Hugging Face tokenizers
// (npm tokenizers@0.23.2, the Rust library) for a fixed corpus, for each real tokenizer.json.
//
//   scripts/fetch-tokenizer-assets.sh                      # tokenizer.json files into the cache
//   scripts/make_tokenizer_goldens.sh                      # installs the oracle in a temp dir, runs this
//
// Invalid UTF-8 cases are stored as hex bytes; the oracle sees them decoded by TextDecoder
// (each ill-formed subsequence -> U+FFFD), the same repair kiln applies.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [oracleDir, assetDir, outDir] = process.argv.slice(2);
const require = createRequire(path.join(oracleDir, 'node_modules', 'x.js'));
const { Tokenizer } = require('tokenizers');

const longText = [
  'The quick brown fox jumps over the lazy dog. ',
  'Über den Wolken muss die Freiheit wohl grenzenlos sein. ',
  'Съешь же ещё этих мягких французских булок, да выпей чаю. ',
  '日本語のテキストと中文文本，以及한국어 문장。',
  'عربي: مرحبا بالعالم. हिन्दी: नमस्ते दुनिया। ',
  'Emoji: 👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🇫🇷 ✊🏿\n',
  'def f(x):\n    return x ** 2  # square\n\n\tif x:\n\t\tpass\n',
].join('').repeat(6);

// [name, text] pairs; a text given as {hex: "..."} is raw (possibly invalid) UTF-8.
const corpus = [
  ['empty', ''],
  ['space', ' '],
  ['spaces', '     '],
  ['newline', '\n'],
  ['newlines', '\n\n\n'],
  ['mixed_ws', ' \t \n \r\n  \n\n\t\t  x  '],
  ['hello', 'Hello world'],
  ['hello_lead_space', ' Hello world'],
  ['hello_punct', 'Hello, world! How are you?'],
  ['contractions', "I'm sure they'll say it's fine, won't they? DON'T YOU'VE"],
  ['numbers', '3 33 333 3333 33333 1234567890 3.14159 -42 1e10 0x1F'],
  ['german', 'Äpfel und Birnen, Größe, Straße, façade, naïve café'],
  ['russian', 'нещо на Български и Русский язык'],
  ['greek', 'Καλημέρα κόσμε'],
  ['arabic', 'مرحبا بالعالم'],
  ['hindi', 'नमस्ते दुनिया'],
  ['khmer', 'កាន់តែពិសេសអាចខលចេញ'],
  ['chinese', '我想在apple工作1314151天～'],
  ['japanese', '日本語のテキスト、カタカナとひらがな。'],
  ['korean', '한국어 문장입니다'],
  ['emoji', '🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅'],
  ['emoji_zwj', '👩‍👩‍👧‍👦👨🏽‍💻🏳️‍🌈🇯🇵'],
  ['emoji_skin', '👍🏻👍🏼👍🏽👍🏾👍🏿'],
  ['nfc_decomposed', 'e\u0301 a\u0308 o\u0302\u0323 \u1100\u1161\u11a8 A\u030a'],
  ['nfc_composed', 'é ä ộ 각 Å'],
  ['combining_marks', 'a\u0323\u0302 x\u0301\u0301\u0301 \u0915\u094d\u0937'],
  ['code_python', 'def main():\n    print("hi")\n    for i in range(10):\n        x = i ** 2\n'],
  ['code_cpp', 'int main(int argc, char** argv) {\n\treturn argc > 1 ? 0 : -1;\n}\n'],
  ['code_json', '{"key": [1, 2, 3], "nested": {"a": null, "b": true}}'],
  ['code_indent', '        indented\n            more\n\n\n    less'],
  ['punct_run', '!!!!!! ?!?! ... --- *** ((( ))) <<<>>> ```'],
  ['url', 'https://example.com/path?query=1&b=2#frag user@mail.org'],
  ['special_in_text_gemma', 'Hi <start_of_turn>user\nHello<end_of_turn>\n<bos><eos>'],
  ['special_in_text_llama', '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>'],
  ['special_in_text_qwen', '<|im_start|>user\nHi<|im_end|>\n<think>\nx\n</think>'],
  ['special_in_text_mistral', '<s>[INST] Hi [/INST]</s>'],
  ['special_partial', '<start_of_turn <|im_start <|eot_id <s'],
  ['unicode_spaces', 'a\u00a0b\u2003c\u3000d\u200be\u2028f'],
  ['control_chars', 'a\u0000b\u0001c\u001fd\u007f'],
  ['private_use', '\ue000\uf8ff\u{f0000}'],
  ['astral', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𓀀'],
  ['bom', '\ufeffBOM text'],
  ['replacement_char', 'bad \ufffd char'],
  ['long_word', 'a'.repeat(300)],
  ['long_digits', '9'.repeat(100)],
  ['long_mixed', longText],
  ['invalid_lone_continuation', { hex: '61 80 62' }],
  ['invalid_truncated_3byte', { hex: 'e2 82 41' }],
  ['invalid_overlong', { hex: 'c0 af e0 80 af' }],
  ['invalid_surrogate', { hex: 'ed a0 80 78' }],
  ['invalid_ff', { hex: 'ff fe 48 69' }],
  ['invalid_truncated_end', { hex: '48 69 f0 9f 98' }],
];

// Deterministic random texts built from fragments that stress pre-tokenizers and merges.
const fragments = [
  'the', ' the', 'The', ' quick', 'fox', "'s", "'LL", ' 12', '345', '6789', '3.14', ',', '.', '!', '?', ' - ', '--',
  ' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n ', '\u00a0', '\u3000',
  'é', 'e\u0301', 'ñ', 'ß', 'Ω', 'Привет', ' мир', 'שלום', 'مرحبا', 'नमस्ते', 'ไทย', '漢字', '日本語', 'カタカナ', '한국어',
  '😀', '👍🏽', '👩‍💻', '🏳️‍🌈', '🇯🇵', '\u200d', '\ufe0f', '𝔘', '\u{10ffff}', '\ufffd',
  'def ', '():', '{', '}', '[', ']', '=>', '==', '/*', '*/', '#', '`', '"', "'", '\\', '<', '>', '</', '/>',
  '<bos>', '<eos>', '<start_of_turn>', '<|im_start|>', '<|eot_id|>', '<s>', '</s>', '<unk>', '<pad>',
];
function* randomTexts(count, seed) {
  let state = seed >>> 0;
  const next = () => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return state; };
  for (let i = 0; i < count; ++i) {
    const n = 1 + (next() % 12);
    let text = '';
    for (let k = 0; k < n; ++k) text += fragments[next() % fragments.length];
    yield text;
  }
}

function textOf(t) {
  if (typeof t === 'string') return t;
  const bytes = Buffer.from(t.hex.replace(/ /g, ''), 'hex');
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}

const tokenizers = [
  ['gemma3', 'gemma3/tokenizer.json'],
  ['llama3', 'llama3/tokenizer.json'],
  ['qwen3', 'qwen3/tokenizer.json'],
  ['mistral', 'mistral/tokenizer.json'],
];

for (const [name, rel] of tokenizers) {
  const file = path.join(assetDir, rel);
  if (!fs.existsSync(file)) {
    console.error(`skip ${name}: ${file} missing`);
    continue;
  }
  const tok = Tokenizer.fromFile(file);
  const cases = [];
  for (const [caseName, t] of corpus) {
    const text = textOf(t);
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const special = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = plain.getIds();
    const entry = { name: caseName };
    if (typeof t === 'string') entry.text = t; else entry.hex = t.hex;
    entry.ids = ids;
    entry.ids_with_special = special.getIds();
    entry.decoded = await tok.decode(ids, false);
    entry.decoded_skip_special = await tok.decode(ids, true);
    cases.push(entry);
  }
  // Decoding of id sequences a model could emit: byte tokens that do not form valid UTF-8,
  // special tokens, every 997th id.
  const decodeCases = [];
  const vocabSize = tok.getVocabSize(true);
  const sweep = [];
  for (let id = 0; id < vocabSize; id += 997) sweep.push(id);
  decodeCases.push({ name: 'sweep', ids: sweep });
  const byteId = (b) => tok.tokenToId('<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>');
  if (byteId(0xe2) !== null) {
    decodeCases.push({ name: 'bytes_valid', ids: [byteId(0xf0), byteId(0x9f), byteId(0x98), byteId(0x81)] });
    decodeCases.push({ name: 'bytes_invalid', ids: [byteId(0xe2), byteId(0x82), tok.tokenToId('a') ?? 0, byteId(0xff)] });
  }
  for (const d of decodeCases) {
    d.decoded = await tok.decode(d.ids, false);
    d.decoded_skip_special = await tok.decode(d.ids, true);
  }
  // Random texts: ids, plus the decoded text when it differs from the input.
  const randomCases = [];
  for (const text of randomTexts(300, 12345)) {
    const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    const entry = { text, ids };
    const decoded = await tok.decode(ids, false);
    if (decoded !== text) entry.decoded = decoded;
    randomCases.push(entry);
  }
  const out = { tokenizer: name, oracle: 'tokenizers@0.23.2 (npm)', source: rel, cases, decode_cases: decodeCases,
                random_cases: randomCases };
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(out) + '\n');
  console.error(`wrote ${name}: ${cases.length} encode cases, ${decodeCases.length} decode cases`);
}
