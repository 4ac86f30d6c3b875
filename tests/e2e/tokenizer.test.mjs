// The gateway's token counts against tiktoken 1.0.22 (OpenAI's own Rust tokenizer, built to
// WASM): `ganglion tokens --batch --ids` encodes fixed texts and seeded random ones, and every
// id must match, for o200k_base and cl100k_base.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tiktoken = require('tiktoken');
const BIN = process.env.GANGLION_BIN;

function mulberry32(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Code points of Unicode 14 or older only: PCRE2 10.42's tables stop there, tiktoken's at 16
// (docs/design/tokenizer.md §3 lists the difference).
const POOLS = [
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', ' ', '  \n\t\r\v\f', "'sStTreREvVemMlLdD",
  '.,;:!?()[]{}<>/\\-_=+*&^%$#@~`"|', 'äöüßéèêàçñÅØÆ', 'абвгдеёжзАБВГДЕ', '東京日本語中文字漢字ひらがなカタカナ한국어',
  '🚀😀👍🏽❤️✨🇫🇷', '\u0301\u0308\u0327', '\u00A0\u3000\u2003\u0085\uFEFF\u200B\u180E\u2028\u2029\u1680', 'ſK\u212A',
  'αβγΔΘΛ', 'ـمرحبا', 'ᾼᾈǅǈ', '\u0000\u0001\u007F', 'हिन्दी ไทย עברית',
];

function randomText(rng) {
  let s = '';
  for (let i = Math.floor(rng() * 80); i > 0; i--) {
    const pool = [...POOLS[Math.floor(rng() * POOLS.length)]];
    for (let k = 1 + Math.floor(rng() * (rng() < 0.1 ? 30 : 3)); k > 0; k--) s += pool[Math.floor(rng() * pool.length)];
  }
  return s;
}

const FIXED = [
  '', 'Hello, world!', '  leading spaces\n\n', 'naïve café 東京 🚀', "don't I'll DON'T WE'VE You'Re", '12345678',
  ' '.repeat(50), '\n'.repeat(30), ' \n \n  \n\t\t x', 'a\uFEFF b', 'a \uFEFFb', 'a \u0085b', 'a \u180Eb', "dog'ſtest",
  '<|endoftext|> and <|endofprompt|> are plain text', 'x'.repeat(5000), ' '.repeat(3000) + 'y', '_'.repeat(4000),
  '東'.repeat(2000), JSON.stringify({ a: [1, 2, 3], b: 'text with "quotes"' }).repeat(50),
  'function f(x) {\n  return x*2; // comment\n}\n', 'tab\tseparated\r\nCRLF\r\n', '\u2028\u2029',
];

function gatewayIds(encoding, texts) {
  const records = [];
  for (const t of texts) {
    const bytes = Buffer.from(t, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(bytes.length);
    records.push(len, bytes);
  }
  const out = execFileSync(BIN, ['tokens', '--encoding', encoding, '--batch', '--ids'],
    { input: Buffer.concat(records), maxBuffer: 1 << 28 });
  return out.toString().split('\n').slice(0, texts.length);
}

for (const encoding of ['o200k_base', 'cl100k_base']) {
  test(`${encoding}: every id equals tiktoken's on fixed and random texts`, () => {
    const rng = mulberry32(encoding.length * 7919);
    const texts = [...FIXED];
    for (let i = 0; i < 3000; i++) texts.push(randomText(rng));
    const got = gatewayIds(encoding, texts);
    const enc = tiktoken.get_encoding(encoding);
    try {
      let differ = 0;
      texts.forEach((text, i) => {
        const want = Array.from(enc.encode_ordinary(text)).join(',');
        if (got[i] !== want && differ++ < 3)
          console.log(`differs on ${JSON.stringify(text).slice(0, 120)}\n  gateway  ${got[i].slice(0, 160)}\n  tiktoken ${want.slice(0, 160)}`);
      });
      assert.equal(differ, 0, `${differ} of ${texts.length} texts differ`);
    } finally {
      enc.free();
    }
  });
}

test('a model name picks its encoding; an unknown one is refused', () => {
  const count = (args, input) => execFileSync(BIN, ['tokens', ...args], { input }).toString().trim();
  assert.equal(count(['--model', 'gpt-4o-mini'], 'Hello, world!'), '4');
  assert.equal(count(['--model', 'gpt-4', '--ids'], 'Hello, world!'), '9906,11,1917,0');
  assert.throws(() => execFileSync(BIN, ['tokens', '--model', 'claude-3-5-haiku'], { input: 'x', stdio: 'pipe' }),
    (e) => e.status === 2 && /no known OpenAI encoding/.test(e.stderr.toString()));
});
