// Builds the static site: www/ → build/www/, with every file under www/assets/ renamed to carry a
// content hash (app.js → app.3f9a1c2b04.js) and every reference to it rewritten, so the cache
// policy's `immutable` class applies to them. Leaf assets (images, fonts) are hashed first, then the
// CSS/JS that may reference them, then the HTML (never renamed: its URLs are the site's).

import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'www');
const OUT = join(ROOT, 'build', 'www');
const TEXT = new Set(['.html', '.css', '.js', '.mjs', '.json', '.svg', '.txt', '.webmanifest']);

const files = (dir) => readdirSync(dir).flatMap((n) => {
  const p = join(dir, n);
  return statSync(p).isDirectory() ? files(p) : [p];
});

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const all = files(SRC);
const isAsset = (p) => relative(SRC, p).startsWith(`assets/`);
const renames = new Map(); // '/assets/app.js' -> '/assets/app.3f9a1c2b04.js'
const rewrite = (text) => {
  for (const [from, to] of renames) text = text.split(from).join(to);
  return text;
};
const emit = (p, content) => {
  const out = join(OUT, relative(SRC, p));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, content);
};

const assets = all.filter(isAsset);
const ordered = [...assets.filter((p) => !TEXT.has(extname(p))), ...assets.filter((p) => TEXT.has(extname(p)))];
for (const p of ordered) {
  const raw = readFileSync(p);
  const content = TEXT.has(extname(p)) ? Buffer.from(rewrite(raw.toString('utf8'))) : raw;
  const hash = createHash('sha256').update(content).digest('hex').slice(0, 10);
  const rel = `/${relative(SRC, p)}`;
  const ext = extname(rel);
  const hashed = `${rel.slice(0, -ext.length)}.${hash}${ext}`;
  renames.set(rel, hashed);
  const out = join(OUT, hashed.slice(1));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, content);
}
for (const p of all.filter((x) => !isAsset(x))) {
  emit(p, TEXT.has(extname(p)) ? rewrite(readFileSync(p, 'utf8')) : readFileSync(p));
}
console.log(`build-www: ${all.length} files, ${renames.size} fingerprinted → ${relative(ROOT, OUT)}`);
