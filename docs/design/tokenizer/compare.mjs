// Runs the C++ prototype on fixed + random cases and compares with tiktoken 1.0.22 (OpenAI's Rust
// core as WASM). usage: node proto/compare.mjs [fuzz count]
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
const require = createRequire(import.meta.url);
const w = require('/tmp/tok/tk/package/tiktoken.cjs');
const N = Number(process.argv[2] ?? 5000);
function mulberry32(a) { return () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a);
  t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296; }; }
const rng = mulberry32(42);
const pools = ['abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', ' ', '  \n\t\r\v\f', "'sStTreREvVemMlLdD",
  '.,;:!?()[]{}<>/\\-_=+*&^%$#@~`"|', 'äöüßéèêàçñÅØÆ', 'абвгдеёжзАБВГДЕ', '東京日本語中文字漢字ひらがなカタカナ한국어',
  '🚀😀👍🏽❤️✨🇫🇷', '\u0301\u0308\u0327', '\u00A0\u3000\u2003\u0085\uFEFF\u200B\u180E\u2028\u2029\u1680', 'ſK\u212A', 'αβγΔΘΛ',
  'ـمرحبا', 'ᾼᾈǅǈ', '\u0000\u0001\u007F'];
const rand = () => { let s = ''; const len = Math.floor(rng() * 80);
  for (let i = 0; i < len; i++) { const p = [...pools[Math.floor(rng() * pools.length)]]; const run = 1 + Math.floor(rng() * (rng() < 0.1 ? 20 : 3));
    for (let k = 0; k < run; k++) s += p[Math.floor(rng() * p.length)]; } return s; };
const cases = ['', 'Hello, world!', '  leading spaces\n\n', 'naïve café 東京 🚀', "don't I'll", '12345678', ' '.repeat(50), '\n'.repeat(30),
  ' \n \n  \n\t\t x', 'a\uFEFF b', 'a \uFEFFb', 'a \u0085b', "dog'ſtest", 'Привет мир', '<|endoftext|>', 'x'.repeat(5000), ' '.repeat(3000) + 'y',
  '_'.repeat(4000), '東'.repeat(2000), JSON.stringify({ a: [1, 2, 3], b: 'text with "quotes"' }).repeat(50)];
for (let i = 0; i < N; i++) cases.push(rand());
const bufs = []; for (const c of cases) { const b = Buffer.from(c, 'utf8'); const h = Buffer.alloc(4); h.writeUInt32LE(b.length); bufs.push(h, b); }
fs.writeFileSync('/tmp/tok/proto/cases.bin', Buffer.concat(bufs));
let bad = 0;
for (const enc of ['cl100k_base', 'o200k_base']) {
  const t0 = Date.now();
  const out = execFileSync(process.env.TOK ?? '/tmp/tok/proto/tok', [enc, `/tmp/tok/out/${enc}.tiktoken`, '/tmp/tok/proto/cases.bin'], { maxBuffer: 1 << 28 }).toString().split('\n');
  const t1 = Date.now();
  const wasm = w.get_encoding(enc);
  let diff = 0;
  cases.forEach((c, i) => { const want = Array.from(wasm.encode_ordinary(c)).join(','); if (out[i] !== want) { diff++; if (diff <= 5) console.log(`DIFF ${enc} ${JSON.stringify(c).slice(0, 200)}\n  c++  ${out[i].slice(0, 200)}\n  wasm ${want.slice(0, 200)}`); } });
  console.log(`${enc}: ${cases.length} cases, ${diff} differ from tiktoken-wasm (c++ run ${t1 - t0} ms incl. load)`);
  bad += diff; wasm.free();
}
process.exitCode = bad ? 1 : 0;
