// Consent declined in the banner: the shop still works end to end, the tracker says "denied" (body
// and cookie), sends no personal data, never calls Zaraz, and Meta's fake receives nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, TEST_SECRETS } from '../support/stack.mjs';
import { stackAndBrowser, watch, recordCollect, outboxSize, sleep, DESKTOP } from './browser.mjs';

const env = stackAndBrowser();

test('consent declined: nothing reaches Meta and the shop still works', async () => {
  const context = await env.browser.newContext(DESKTOP);
  const zaraz = [];
  await context.exposeFunction('__recordZaraz', (name) => { zaraz.push(name); });
  await context.addInitScript(() => { window.zaraz = { track: (name, data) => window.__recordZaraz(name, data) }; });
  const page = await context.newPage();
  const w = watch(page);
  const posts = await recordCollect(page);
  const answers = [];
  page.on('response', async (r) => {
    if (new URL(r.url()).pathname === '/collect') answers.push({ status: r.status(), body: await r.json().catch(() => null) });
  });
  try {
    await page.goto(`${env.stack.url}/`);
    await page.waitForSelector('#consent-banner');
    await sleep(300);
    assert.equal(posts.length, 0, 'nothing is sent before the visitor answers');
    await page.click('#consent-decline');
    await page.waitForSelector('#consent-banner', { state: 'detached' });
    assert.equal((await context.cookies(env.stack.url)).find((c) => c.name === 'ek_consent')?.value, 'denied');

    await page.click('[data-testid=product-card][data-id=sku-notebook]');
    await page.waitForURL(/\/product\?id=sku-notebook$/);
    assert.equal(await page.locator('#consent-banner').count(), 0, 'the answer is remembered');
    await page.click('#add-to-cart');
    await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '1');
    await sleep(600); // a separate click, not a double click
    await page.click('#add-to-cart');
    await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '2');
    await page.click('#go-to-cart');
    await page.waitForURL(/\/cart$/);
    assert.equal(await page.textContent('[data-testid=cart-qty]'), '2');
    await page.fill('#checkout-email', 'decline@example.com');
    await page.click('#place-order');
    await page.waitForURL(/\/success\?order=/);
    assert.equal(await page.getAttribute('#order-total', 'data-value'), '49');

    // The tracker still posts (so the worker can count the statement), but says "denied", carries no
    // user_data, and keeps nothing for retries.
    await waitFor(() => posts.some((p) => p.body.data.some((e) => e.event_name === 'Purchase')), { what: 'the denied Purchase post' });
    await sleep(4000);
    assert.ok(posts.length > 0);
    for (const p of posts) {
      assert.equal(p.body.consent, 'denied');
      for (const e of p.body.data) assert.equal(e.user_data, undefined, `${e.event_name} carried user_data`);
    }
    assert.ok(posts.some((p) => p.type === 'ping'), 'denied events go out by sendBeacon');
    // A beacon's answer body cannot always be read once the page has moved on: check every one that could.
    const read = answers.filter((a) => a.body);
    assert.ok(answers.every((a) => a.status === 202), JSON.stringify(answers));
    assert.ok(read.length > 0 && read.every((a) => a.body.accepted.length === 0 && a.body.skipped[0].reason === 'consent_denied'), JSON.stringify(answers));
    assert.equal(await outboxSize(page), 0);
    assert.deepEqual(zaraz, [], 'no zaraz.track without consent');

    assert.deepEqual(env.stack.meta.received(), [], 'Meta received nothing');
    const stats = await (await fetch(`${env.stack.url}/admin/stats`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json();
    assert.equal(stats.books.accepted, 0);
    const cookies = await context.cookies(env.stack.url);
    assert.ok(!cookies.some((c) => c.name === '_fbp' || c.name === '_fbc'), 'no browser ids set without consent');
    w.check();
  } finally {
    await context.close();
  }
});

test('changing the answer later: events after a grant are sent, earlier denied ones are not', async () => {
  const context = await env.browser.newContext(DESKTOP);
  const page = await context.newPage();
  const w = watch(page);
  try {
    await page.goto(`${env.stack.url}/product?id=sku-pen`);
    await page.click('#consent-decline');
    await page.click('#privacy-choices');
    await page.click('#consent-accept');
    await page.click('#add-to-cart');
    const add = () => env.stack.meta.received().filter((e) => e.event_name === 'AddToCart' && e.custom_data.content_ids[0] === 'sku-pen');
    await waitFor(() => add().length === 1, { what: 'the AddToCart after the grant' });
    assert.equal(env.stack.meta.received().filter((e) => e.event_name === 'ViewContent').length, 0, 'the view was declined');
    w.check();
  } finally {
    await context.close();
  }
});
