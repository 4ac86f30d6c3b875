// Reference tokenizer over the converted files (out/<enc>.tiktoken + out/<enc>.meta.json), checked
// against js-tiktoken 1.0.21 (pure JS, the e2e node_modules copy) and tiktoken 1.0.22 (OpenAI's
// Rust core compiled to WASM, unpacked in /tmp/tok/tk/package).
//
//   node ref.mjs            fixed cases + random fuzz (FUZZ=n iterations per encoding, default 3000)
//
// Two pre-tokenizer patterns are exercised:
//   js       : the pattern js-tiktoken ships (JS regex, 'u' flag, (?i:) spelled out)
//   portable : the pattern proposed for C++ (PCRE2 UTF|UCP): \s and \S replaced by the explicit
//              Unicode White_Space class Rust's regex crate uses, (?i:...) kept as in tiktoken.
//              In JS (?i:) is spelled as classes that include the Unicode case-fold partners
//              (ſ U+017F for s, K U+212A for k is irrelevant here), matching Rust/PCRE2 caseless.
import { createRequire } from 'node:module';
import fs from 'node:fs';

const require = createRequire(import.meta.url);
const E2E = '/work/main/tests/e2e/node_modules';
const { Tiktoken } = require(`${E2E}/js-tiktoken/dist/lite.cjs`);
const wasmTiktoken = require('/tmp/tok/tk/package/tiktoken.cjs');
const OUT = '/tmp/tok/out';

// ---- loading the converted file ---------------------------------------------------------------
export function loadRanks(enc) {
  const ranks = new Map();  // latin1 string of the token bytes -> rank
  for (const line of fs.readFileSync(`${OUT}/${enc}.tiktoken`, 'latin1').split('\n')) {
    if (!line) continue;
    const [b64, r] = line.split(' ');
    ranks.set(Buffer.from(b64, 'base64').toString('latin1'), Number(r));
  }
  return ranks;
}

// ---- byte-pair merge, exactly tiktoken's _byte_pair_merge semantics ---------------------------
// Repeatedly merge the adjacent pair whose concatenation has the lowest rank (leftmost on ties)
// until no adjacent pair is a token. Heap version (O(n log n)) -- the C++ plan uses the same.
function bpe(piece /* latin1 string */, ranks, out) {
  const whole = ranks.get(piece);
  if (whole !== undefined) { out.push(whole); return; }
  const n = piece.length;
  // parts as a linked list over byte positions: start[i] valid when alive[i]
  const next = new Int32Array(n), prev = new Int32Array(n), alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) { next[i] = i + 1; prev[i] = i - 1; }
  const ver = new Uint32Array(n);  // bumps when part i changes, to drop stale heap entries
  const heap = [];                 // [rank, pos, ver(pos), ver(next)]
  const less = (a, b) => a[0] - b[0] || a[1] - b[1];
  const push = (e) => { heap.push(e); let i = heap.length - 1;
    while (i > 0) { const p = (i - 1) >> 1; if (less(heap[i], heap[p]) >= 0) break; [heap[i], heap[p]] = [heap[p], heap[i]]; i = p; } };
  const pop = () => { const top = heap[0], last = heap.pop();
    if (heap.length) { heap[0] = last; let i = 0;
      for (;;) { const l = 2 * i + 1, r = l + 1; let m = i;
        if (l < heap.length && less(heap[l], heap[m]) < 0) m = l;
        if (r < heap.length && less(heap[r], heap[m]) < 0) m = r;
        if (m === i) break; [heap[i], heap[m]] = [heap[m], heap[i]]; i = m; } }
    return top; };
  const pairRank = (i) => { const j = next[i]; if (j >= n) return undefined;
    const end = next[j] <= n ? next[j] : n; return ranks.get(piece.slice(i, end)); };
  const consider = (i) => { if (i < 0 || i >= n) return; const j = next[i]; if (j >= n) return;
    const r = pairRank(i); if (r !== undefined) push([r, i, ver[i], ver[j]]); };
  for (let i = 0; i + 1 < n; i++) consider(i);
  while (heap.length) {
    const [, i, vi, vj] = pop();
    const j = next[i];
    if (!alive[i] || j >= n || ver[i] !== vi || ver[j] !== vj) continue;  // stale
    // merge j into i
    alive[j] = 0; next[i] = next[j]; if (next[j] < n) prev[next[j]] = i;
    ver[i]++;
    consider(i);
    if (prev[i] >= 0) consider(prev[i]);  // (prev,i) changed via ver[i]; (prevprev,prev) did not
  }
  for (let i = 0; i < n; i = next[i]) {
    const r = ranks.get(piece.slice(i, next[i]));
    if (r === undefined) throw new Error('unreachable: every byte has a rank');
    out.push(r);
  }
}

// ---- pre-tokenizer patterns --------------------------------------------------------------------
// Unicode White_Space (what Rust regex's \s means; tiktoken uses fancy-regex on top of it).
const WS = '\\t\\n\\v\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const CONTR = "'(?:[sS\\u017F]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])";  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
export const PORTABLE = {
  cl100k_base:
    `${CONTR}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*` +
    `|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  o200k_base:
    `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:${CONTR})?` +
    `|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:${CONTR})?` +
    `|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
};

export function makeEncoder(enc, flavour = 'js') {
  const meta = JSON.parse(fs.readFileSync(`${OUT}/${enc}.meta.json`, 'utf8'));
  const ranks = loadRanks(enc);
  const re = new RegExp(flavour === 'js' ? meta.pat_str_js : PORTABLE[enc], 'gu');
  // encode_ordinary: special-token text is plain text (what a prompt's content is)
  return (text) => {
    const out = [];
    for (const m of text.matchAll(re)) bpe(Buffer.from(m[0], 'utf8').toString('latin1'), ranks, out);
    return out;
  };
}

// ---- checks ------------------------------------------------------------------------------------
const CASES = [
  '', 'Hello, world!', '  leading spaces\n\n', 'naïve café 東京 🚀', "don't I'll", "DON'T WE'VE You'Re",
  '12345678', '1234567890123', ' '.repeat(37), '\n'.repeat(19), ' \n \n  \n\t\t x', 'a  b   c    \n    d',
  'Привет мир, Ελληνικά, עברית, العربية, हिन्दी, ไทย, 한국어, 日本語のテキスト',
  'mixedScriptsαβγ中文abc123def', '👨‍👩‍👧‍👦 family, 🇫🇷 flag, e\u0301 combining', 'tab\tseparated\tvalues\r\nCRLF\r\n',
  'function f(x) {\n  return x*2; // comment\n}\n', '{"key": "value", "n": [1,2,3]}', '<|endoftext|> as plain text',
  "it'ſ the Kelvin \u212A sign", 'nbsp\u00A0here and\u3000ideographic space', 'NEL\u0085line', 'BOM\uFEFFinside',
  'zwsp\u200Bhere', 'x'.repeat(300), '!!!???...'.repeat(20), 'lone surrogate \uD800 end', '\u00ad soft hyphen',
  'ｆｕｌｌｗｉｄｔｈ １２３', 'Ünïcödé ÜBER über', "can't won't shouldn't've", '$1,234.56 vs €7.890,12',
  'http://example.com/path?q=1&r=2#frag', '    indented\n        more\n', 'end with space ', '\u2028\u2029',
];

function randomString(rng) {
  const pools = [
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', ' ', '  \n\t\r',
    "'sStTreREvVemMlLdD", '.,;:!?()[]{}<>/\\-_=+*&^%$#@~`"|', 'äöüßéèêàçñÅØÆ', 'абвгдеёжзАБВГДЕ',
    '東京日本語中文字漢字ひらがなカタカナ한국어', '🚀😀👍🏽❤️✨🇫🇷', '\u0301\u0308\u0327', '\u00A0\u3000\u2003\u0085\uFEFF\u200B',
    'ſK', 'αβγΔΘΛ', 'ـمرحبا', 'ᾼᾈǅǈ',  // Lt titlecase letters
  ];
  const len = Math.floor(rng() * 60);
  let s = '';
  for (let i = 0; i < len; i++) {
    const p = [...pools[Math.floor(rng() * pools.length)]];
    const run = 1 + Math.floor(rng() * (rng() < 0.1 ? 12 : 3));
    for (let k = 0; k < run; k++) s += p[Math.floor(rng() * p.length)];
  }
  return s;
}

function mulberry32(a) { return () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a);
  t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296; }; }

const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

if (import.meta.url === `file://${process.argv[1]}`) {
  const fuzzN = Number(process.env.FUZZ ?? 3000);
  let failures = 0;
  for (const enc of ['cl100k_base', 'o200k_base']) {
    const js = new Tiktoken(require(`${E2E}/js-tiktoken/dist/ranks/${enc}.cjs`));
    const wasm = wasmTiktoken.get_encoding(enc);
    const refJs = makeEncoder(enc, 'js');
    const refPortable = makeEncoder(enc, 'portable');
    const stats = { cases: 0, ref_vs_js: 0, portable_vs_wasm: 0, js_vs_wasm: 0 };
    const check = (s, label, verbose) => {
      stats.cases++;
      const a = refJs(s), b = js.encode(s, [], []), c = Array.from(wasm.encode_ordinary(s)), d = refPortable(s);
      if (!eq(a, b)) { stats.ref_vs_js++; failures++; console.log(`FAIL ${enc} ref(js pattern) != js-tiktoken on ${JSON.stringify(s)}\n  ${a}\n  ${b}`); }
      if (!eq(d, c)) { stats.portable_vs_wasm++; failures++; console.log(`FAIL ${enc} ref(portable) != tiktoken-wasm on ${JSON.stringify(s)}\n  ${d}\n  ${c}`); }
      if (!eq(b, c)) { stats.js_vs_wasm++; if (verbose) console.log(`note ${enc} js-tiktoken != tiktoken-wasm on ${JSON.stringify(s)}: ${b.length} vs ${c.length} tokens`); }
      if (verbose === 'print') console.log(`${enc} ${JSON.stringify(s).slice(0, 60)} -> ${c.length} [${c.slice(0, 12)}${c.length > 12 ? ',…' : ''}]`);
    };
    for (const s of CASES) check(s, 'case', s.length < 80 ? 'print' : true);
    const rng = mulberry32(enc.length * 7919);
    for (let i = 0; i < fuzzN; i++) check(randomString(rng), 'fuzz', true);
    // long pieces: tiktoken-wasm and the heap BPE only (js-tiktoken is O(n^2)+ per piece)
    for (const s of ['a'.repeat(20000), ' '.repeat(20000) + 'x', '_'.repeat(20000), '東'.repeat(5000)]) {
      const t0 = Date.now(); const d = refPortable(s); const t1 = Date.now(); const c = wasm.encode_ordinary(s); const t2 = Date.now();
      if (!eq(d, Array.from(c))) { failures++; console.log(`FAIL ${enc} long ${JSON.stringify(s.slice(0, 5))}x${s.length}`); }
      else console.log(`${enc} long ${JSON.stringify(s.slice(0, 3))}…(${s.length} chars) ${c.length} tokens: heap ref ${t1 - t0} ms, tiktoken-wasm ${t2 - t1} ms`);
    }
    wasm.free();
    console.log(`${enc}: ${JSON.stringify(stats)}`);
  }
  console.log(failures ? `${failures} FAILURES` : 'ALL OK');
  process.exitCode = failures ? 1 : 0;
}
