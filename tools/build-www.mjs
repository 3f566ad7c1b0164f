// Builds the two static trees, each the same way (plus www/shared/, copied into both assets folders):
//   www/edge/ → build/edge/  what `wrangler deploy` uploads as the worker's assets: only files under
//                            /__edgekeeper/ (the tracker at its stable URL, the operations dashboard)
//   www/shop/ → build/shop/  the demo shop, served by tools/demo-origin.mjs as the worker's origin in
//                            `make dev` and the tests; never deployed
// In each tree every file under its assets folder is renamed to carry a content hash (app.js →
// app.3f9a1c2b04.js) and every reference to it rewritten, so the cache policy's `immutable` class
// applies to them. Leaf assets (images, fonts) are hashed first, then the CSS/JS that may reference
// them, then everything else (never renamed: those URLs are stable, e.g. /__edgekeeper/tracker.js).

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TEXT = new Set(['.html', '.css', '.js', '.mjs', '.json', '.svg', '.txt', '.webmanifest']);

/** The trees: source, output, and the folder (relative to both) whose files are fingerprinted. */
/** Files both trees serve from their assets folder (the shop and the worker are served apart). */
export const SHARED = join(ROOT, 'www', 'shared');

export const TREES = [
  { name: 'edge', src: join(ROOT, 'www', 'edge'), out: join(ROOT, 'build', 'edge'), assets: '__edgekeeper/assets/' },
  { name: 'shop', src: join(ROOT, 'www', 'shop'), out: join(ROOT, 'build', 'shop'), assets: 'assets/' },
];

const files = (dir) => readdirSync(dir).flatMap((n) => {
  const p = join(dir, n);
  return statSync(p).isDirectory() ? files(p) : [p];
});

export function buildTree({ src, out, assets: assetsDir }) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  // Each file as { rel: its path in the tree, path: where it is read from }.
  const all = [
    ...files(src).map((path) => ({ rel: relative(src, path), path })),
    ...files(SHARED).map((path) => ({ rel: `${assetsDir}${relative(SHARED, path)}`, path })),
  ];
  const isAsset = (f) => f.rel.startsWith(assetsDir);
  const renames = new Map(); // '/assets/app.js' -> '/assets/app.3f9a1c2b04.js'
  const rewrite = (text) => {
    for (const [from, to] of renames) text = text.split(from).join(to);
    return text;
  };
  const emit = (rel, content) => {
    const p = join(out, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  };

  const assets = all.filter(isAsset);
  const ordered = [...assets.filter((f) => !TEXT.has(extname(f.rel))), ...assets.filter((f) => TEXT.has(extname(f.rel)))];
  for (const f of ordered) {
    const raw = readFileSync(f.path);
    const content = TEXT.has(extname(f.rel)) ? Buffer.from(rewrite(raw.toString('utf8'))) : raw;
    const hash = createHash('sha256').update(content).digest('hex').slice(0, 10);
    const rel = `/${f.rel}`;
    const ext = extname(rel);
    const hashed = `${rel.slice(0, -ext.length)}.${hash}${ext}`;
    renames.set(rel, hashed);
    emit(hashed.slice(1), content);
  }
  for (const f of all.filter((x) => !isAsset(x))) {
    emit(f.rel, TEXT.has(extname(f.rel)) ? rewrite(readFileSync(f.path, 'utf8')) : readFileSync(f.path));
  }
  return { files: all.length, fingerprinted: renames.size };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  rmSync(join(ROOT, 'build', 'www'), { recursive: true, force: true }); // the old single tree
  for (const tree of TREES) {
    const { files: n, fingerprinted } = buildTree(tree);
    console.log(`build-www: ${tree.name}: ${n} files, ${fingerprinted} fingerprinted → ${relative(ROOT, tree.out)}`);
  }
}
