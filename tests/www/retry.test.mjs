// /collect failing (503) while a visitor shops: the page keeps working, the tracker keeps the events
// in its outbox and retries them with backoff under the same ids, and once /collect recovers every
// event reaches Meta exactly once. A 4xx answer is final: dropped, never retried.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../support/stack.mjs';
import { stackAndBrowser, watch, recordCollect, countsById, outboxSize, sleep, DESKTOP } from './browser.mjs';

const env = stackAndBrowser();

const grantedCookie = () => ({ name: 'ek_consent', value: 'granted', url: env.stack.url });
// Chromium reports every failed load as a console error; those are the 503s this test injects.
const INJECTED = /status of 503|status of 400/;

test('503s from /collect: the page stays usable, events are retried and delivered exactly once', async () => {
  const context = await env.browser.newContext(DESKTOP);
  await context.addCookies([grantedCookie()]);
  const page = await context.newPage();
  const w = watch(page, { allow: INJECTED });
  let failuresLeft = 5;
  await page.route('**/collect', async (route) => {
    if (route.request().method() === 'POST' && failuresLeft > 0) {
      failuresLeft -= 1;
      await route.fulfill({ status: 503, contentType: 'application/json', headers: { 'retry-after': '1' },
        body: JSON.stringify({ error: { code: 'queue_unavailable', message: 'injected by the test' } }) });
      return;
    }
    await route.continue();
  });
  const posts = await recordCollect(page);
  try {
    await page.goto(`${env.stack.url}/product?id=sku-pourover`);
    assert.equal(await page.textContent('#product-name'), 'Ceramic pour-over');

    // The UI answers at once while /collect is failing.
    await waitFor(() => posts.some((p) => p.status === 503), { what: 'a first 503' });
    const t0 = Date.now();
    await page.click('#add-to-cart');
    await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '1');
    assert.ok(Date.now() - t0 < 1000, `the click took ${Date.now() - t0} ms`);
    assert.ok((await outboxSize(page)) >= 1, 'failed events wait in the outbox');

    // Backoff on this page: the same ids come back, spaced out (1 s, 2 s, 4 s …), not in a hot loop.
    await waitFor(() => failuresLeft === 0 && posts.some((p) => p.status === 202), { ms: 20000, what: 'recovery' });
    const view = posts[0].body.data.find((e) => e.event_name === 'ViewContent');
    const viewAttempts = posts.filter((p) => p.body.data.some((e) => e.event_id === view.event_id));
    assert.ok(viewAttempts.length >= 3, `ViewContent tried ${viewAttempts.length} times`);
    for (let i = 1; i < viewAttempts.length; i++) {
      const gap = viewAttempts[i].at - viewAttempts[i - 1].at;
      assert.ok(gap >= 900, `retry ${i} after ${gap} ms`);
    }
    const gaps = viewAttempts.slice(1).map((p, i) => p.at - viewAttempts[i].at);
    if (gaps.length >= 2) assert.ok(gaps[1] >= gaps[0] * 1.5, `growing backoff: ${gaps.join(', ')} ms`);
    const retried = viewAttempts.at(-1).body.data.find((e) => e.event_id === view.event_id);
    assert.deepEqual(retried, view, 'a retry resends the event unchanged (same id, same event_time)');

    // Fail again across pages: what is left is sent on the next page load.
    failuresLeft = 2;
    await page.click('#go-to-cart');
    await page.waitForURL(/\/cart$/);
    await page.click('#place-order');
    await page.waitForURL(/\/success\?order=/);
    const orderId = await page.textContent('#order-id');

    const sent = new Map();
    for (const p of posts) for (const e of p.body.data) sent.set(e.event_id, e.event_name);
    await waitFor(() => [...sent.keys()].every((id) => countsById(env.stack).get(id) >= 1), { ms: 30000, what: 'every event at Meta' });
    await waitFor(async () => (await outboxSize(page)) === 0, { ms: 15000, what: 'an empty outbox' });
    await sleep(3000);
    const counts = countsById(env.stack);
    for (const [id, name] of sent) assert.equal(counts.get(id), 1, `${name} ${id} delivered ${counts.get(id)} times`);
    for (const name of ['ViewContent', 'AddToCart', 'Purchase']) {
      assert.equal(env.stack.meta.received().filter((e) => e.event_name === name).length, 1, name);
    }
    assert.equal(env.stack.meta.received().find((e) => e.event_name === 'Purchase').event_id, orderId);
    assert.ok(posts.filter((p) => p.status === 503).length >= 7, 'the injected failures happened');
    w.check();
  } finally {
    await context.close();
  }
});

test('a 4xx answer is final: the events are dropped, not retried', async () => {
  const context = await env.browser.newContext(DESKTOP);
  await context.addCookies([grantedCookie()]);
  const page = await context.newPage();
  const w = watch(page, { allow: INJECTED });
  let refuse = true;
  await page.route('**/collect', async (route) => {
    if (route.request().method() === 'POST' && refuse) {
      refuse = false;
      await route.fulfill({ status: 400, contentType: 'application/json',
        body: JSON.stringify({ accepted: [], duplicates: [], rejected: [], skipped: [], error: { code: 'invalid_body', message: 'injected' } }) });
      return;
    }
    await route.continue();
  });
  const posts = await recordCollect(page);
  try {
    await page.goto(`${env.stack.url}/`);
    await waitFor(() => posts.length === 1 && posts[0].status === 400, { what: 'the refused PageView' });
    const [refused] = posts[0].body.data;
    await waitFor(async () => (await outboxSize(page)) === 0, { what: 'the outbox emptied' });
    await page.click('[data-testid=product-card][data-id=sku-beanie]');
    await page.waitForURL(/sku-beanie/);
    await waitFor(() => env.stack.meta.received().some((e) => e.event_name === 'ViewContent' && e.custom_data.content_ids[0] === 'sku-beanie'), { what: 'the next events' });
    await sleep(1500);
    assert.equal(posts.filter((p) => p.body.data.some((e) => e.event_id === refused.event_id)).length, 1, 'never sent again');
    assert.equal(countsById(env.stack).get(refused.event_id), undefined);
    w.check();
  } finally {
    await context.close();
  }
});
