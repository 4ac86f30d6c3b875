// Converts js-tiktoken's compressed rank files (dist/ranks/<enc>.cjs) into
//   <out>/<enc>.tiktoken : OpenAI's own format, "<base64 token> <rank>\n" in rank order
//                          (byte-identical to https://openaipublic.blob.core.windows.net/encodings/<enc>.tiktoken)
//   <out>/<enc>.bpe      : compact binary, for a C++ loader that needs no base64:
//                          "GBPE" magic, u32 LE version=1, u32 LE count, then per rank in
//                          order: u8 length (1..255), raw token bytes
//   <out>/<enc>.meta.json: pat_str (JS flavour as shipped), special_tokens, rank count
//
// js-tiktoken's format: { pat_str, special_tokens, bpe_ranks } where bpe_ranks is a string of
// "\n"-separated lines, each "<ignored> <first rank> <b64> <b64> ..." -- the tokens of a line
// take consecutive ranks from <first rank>. (For cl100k_base and o200k_base it is one line
// starting at 0: no gaps.)
//
// usage: node convert.mjs [ranks dir] [out dir] [enc ...]
//   ranks dir defaults to tests/e2e/node_modules/js-tiktoken/dist/ranks of /work/main
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
const ranksDir = path.resolve(process.argv[2] ?? '/work/main/tests/e2e/node_modules/js-tiktoken/dist/ranks');
const outDir = path.resolve(process.argv[3] ?? '/tmp/tok/out');
const encs = process.argv.length > 4 ? process.argv.slice(4) : ['cl100k_base', 'o200k_base'];

export function decodeJsTiktoken(ranks) {
  const tokens = [];  // tokens[rank] = Buffer
  for (const line of ranks.bpe_ranks.split('\n')) {
    if (!line) continue;
    const [, offsetStr, ...b64s] = line.split(' ');
    const offset = Number.parseInt(offsetStr, 10);
    b64s.forEach((b64, i) => {
      if (tokens[offset + i] !== undefined) throw new Error(`rank ${offset + i} twice`);
      tokens[offset + i] = Buffer.from(b64, 'base64');
    });
  }
  return tokens;
}

fs.mkdirSync(outDir, { recursive: true });
for (const enc of encs) {
  const mod = require(path.join(ranksDir, `${enc}.cjs`));
  const ranks = mod.default ?? mod;
  const tokens = decodeJsTiktoken(ranks);

  // checks: dense, unique, every single byte present, no empty or >255-byte token
  const seen = new Set();
  let maxLen = 0;
  for (let r = 0; r < tokens.length; r++) {
    const t = tokens[r];
    if (t === undefined) throw new Error(`${enc}: gap at rank ${r}`);
    if (t.length === 0 || t.length > 255) throw new Error(`${enc}: rank ${r} has ${t.length} bytes`);
    const k = t.toString('latin1');
    if (seen.has(k)) throw new Error(`${enc}: duplicate token at rank ${r}`);
    seen.add(k);
    maxLen = Math.max(maxLen, t.length);
  }
  for (let b = 0; b < 256; b++)
    if (!seen.has(String.fromCharCode(b))) throw new Error(`${enc}: byte ${b} has no rank`);
  for (const [s, id] of Object.entries(ranks.special_tokens))
    if (id < tokens.length) throw new Error(`${enc}: special ${s} collides with rank ${id}`);

  let text = '';
  for (let r = 0; r < tokens.length; r++) text += `${tokens[r].toString('base64')} ${r}\n`;
  fs.writeFileSync(path.join(outDir, `${enc}.tiktoken`), text);

  const parts = [Buffer.from('GBPE'), Buffer.alloc(8)];
  parts[1].writeUInt32LE(1, 0);
  parts[1].writeUInt32LE(tokens.length, 4);
  for (const t of tokens) parts.push(Buffer.from([t.length]), t);
  fs.writeFileSync(path.join(outDir, `${enc}.bpe`), Buffer.concat(parts));

  fs.writeFileSync(path.join(outDir, `${enc}.meta.json`), JSON.stringify({
    name: enc, n_ranks: tokens.length, max_token_bytes: maxLen,
    pat_str_js: ranks.pat_str, special_tokens: ranks.special_tokens,
  }, null, 1) + '\n');

  const sha = createHash('sha256').update(text).digest('hex');
  console.log(`${enc}: ${tokens.length} ranks (0..${tokens.length - 1}), max token ${maxLen} bytes, ` +
              `specials ${JSON.stringify(ranks.special_tokens)}, .tiktoken sha256 ${sha}`);
}
