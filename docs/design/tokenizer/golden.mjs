// Writes golden token ids from tiktoken 1.0.22 (OpenAI's Rust core as WASM) for a C++ unit test
// that runs without node: one JSON object a line, {"text":..., "cl100k_base":[...], "o200k_base":[...]}.
// usage: node golden.mjs [count] > golden.jsonl
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const w = require(process.env.TIKTOKEN ?? '/tmp/tok/tk/package/tiktoken.cjs');
const N = Number(process.argv[2] ?? 300);
function mulberry32(a) { return () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a);
  t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296; }; }
const rng = mulberry32(9);
const pools = ['abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', ' ', '  \n\t\r\v\f', "'sStTreREvVemMlLdD",
  '.,;:!?()[]{}<>/\\-_=+*&^%$#@~`"|', 'äöüßéèêàçñÅØÆ', 'абвгдеёжзАБВГДЕ', '東京日本語中文字漢字ひらがなカタカナ한국어',
  '🚀😀👍🏽❤️✨🇫🇷', '\u0301\u0308\u0327', '\u00A0\u3000\u2003\u0085\uFEFF\u200B\u180E\u2028\u2029\u1680', 'ſK\u212A', 'αβγΔΘΛ',
  'ـمرحبا', 'ᾼᾈǅǈ', '\u0000\u0001\u007F'];
const rand = () => { let s = ''; const len = Math.floor(rng() * 60);
  for (let i = 0; i < len; i++) { const p = [...pools[Math.floor(rng() * pools.length)]]; const run = 1 + Math.floor(rng() * (rng() < 0.1 ? 20 : 3));
    for (let k = 0; k < run; k++) s += p[Math.floor(rng() * p.length)]; } return s; };
const cases = ['', 'Hello, world!', '  leading spaces\n\n', 'naïve café 東京 🚀', "don't I'll", "DON'T WE'VE You'Re", '12345678',
  ' '.repeat(50), '\n'.repeat(30), ' \n \n  \n\t\t x', 'a\uFEFF b', 'a \uFEFFb', 'a \u0085b', 'a \u180Eb', "dog'ſtest",
  '<|endoftext|> and <|endofprompt|> are plain text here', 'x'.repeat(3000), ' '.repeat(2000) + 'y', '東'.repeat(1000),
  'function f(x) {\n  return x*2; // comment\n}\n', '{"a": [1, 2, 3], "b": "text"}'];
for (let i = 0; i < N; i++) cases.push(rand());
const encs = Object.fromEntries(['cl100k_base', 'o200k_base'].map((e) => [e, w.get_encoding(e)]));
for (const text of cases) {
  const o = { text };
  for (const [name, e] of Object.entries(encs)) o[name] = Array.from(e.encode_ordinary(text));
  process.stdout.write(JSON.stringify(o) + '\n');
}
