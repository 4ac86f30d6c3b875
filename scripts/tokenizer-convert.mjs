// Converts js-tiktoken's rank files (dist/ranks/<enc>.cjs) into the compact vocabularies the
// gateway embeds (<out>/<enc>.bpe), refusing to write unless the data is OpenAI's own: the
// ranks are rebuilt in OpenAI's .tiktoken text form ("<base64 token> <rank>\n" per rank) and
// its SHA-256 must equal the expected_hash pinned in tiktoken's openai_public.py.
//
// .bpe format: "GBPE", u32le version (1), u32le rank count, then per rank in order a u8 length
// (1..255) and the token's raw bytes. Read by src/llm/tokenizer/vocab.cc.
//
// js-tiktoken's rank format: { pat_str, special_tokens, bpe_ranks }, bpe_ranks being lines
// "<label> <first rank> <b64 token> <b64 token> ..." whose tokens take consecutive ranks.
//
// usage: node scripts/tokenizer-convert.mjs <ranks dir> <out dir>
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const OPENAI_SHA256 = {
  cl100k_base: '223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7',
  o200k_base: '446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d',
};

const [ranksDir, outDir] = process.argv.slice(2).map((p) => path.resolve(p));
if (!ranksDir || !outDir) {
  console.error('usage: node tokenizer-convert.mjs <ranks dir> <out dir>');
  process.exit(2);
}
const require = createRequire(import.meta.url);
fs.mkdirSync(outDir, { recursive: true });

for (const [enc, expected] of Object.entries(OPENAI_SHA256)) {
  const mod = require(path.join(ranksDir, `${enc}.cjs`));
  const ranks = mod.default ?? mod;
  const tokens = [];
  for (const line of ranks.bpe_ranks.split('\n')) {
    if (!line) continue;
    const [, first, ...b64s] = line.split(' ');
    const offset = Number.parseInt(first, 10);
    b64s.forEach((b64, i) => {
      if (tokens[offset + i] !== undefined) throw new Error(`${enc}: rank ${offset + i} given twice`);
      tokens[offset + i] = Buffer.from(b64, 'base64');
    });
  }
  const hash = createHash('sha256');
  for (let r = 0; r < tokens.length; r++) {
    const t = tokens[r];
    if (t === undefined) throw new Error(`${enc}: no token for rank ${r}`);
    if (t.length === 0 || t.length > 255) throw new Error(`${enc}: rank ${r} has ${t.length} bytes`);
    hash.update(`${t.toString('base64')} ${r}\n`);
  }
  const got = hash.digest('hex');
  if (got !== expected) throw new Error(`${enc}: the ranks are not OpenAI's (sha256 ${got}, expected ${expected})`);

  const head = Buffer.alloc(12);
  head.write('GBPE', 0, 'latin1');
  head.writeUInt32LE(1, 4);
  head.writeUInt32LE(tokens.length, 8);
  const parts = [head];
  for (const t of tokens) parts.push(Buffer.from([t.length]), t);
  const file = path.join(outDir, `${enc}.bpe`);
  fs.writeFileSync(`${file}.tmp`, Buffer.concat(parts));
  fs.renameSync(`${file}.tmp`, file);
  console.log(`${enc}: ${tokens.length} ranks, OpenAI's sha256 ${got}`);
}
