// Runs every node test file under tests/ (the suites drive the built worker in workerd, the local
// store and the fakes) with the spec reporter, then prints one closing line: `N passed, N failed`.

import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './support/stack.mjs';

function testFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'support' ? [] : testFiles(p);
    return name.endsWith('.test.mjs') ? [p] : [];
  });
}

const only = process.argv.slice(2);
const files = testFiles(join(ROOT, 'tests')).filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
let passed = 0;
let failed = 0;
const stream = run({ files, concurrency: Number(process.env.TEST_CONCURRENCY || 2), timeout: 300_000 });
stream.on('test:pass', (e) => { if (e.details?.type !== 'suite' && !e.skip) passed++; });
stream.on('test:fail', (e) => { if (e.details?.type !== 'suite') failed++; });
const out = stream.compose(spec);
out.pipe(process.stdout);
out.on('end', () => {
  console.log(`\nworker suites (${files.map((f) => relative(ROOT, f)).join(', ')})`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
});
