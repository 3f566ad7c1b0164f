// The demo shop in real Chromium against the real worker: browse → product → add to cart (double
// click) → checkout, with consent granted; Meta's fake must get ViewContent, AddToCart and Purchase
// exactly once each, with the same ids Zaraz was given.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../support/stack.mjs';
import { stackAndBrowser, watch, recordCollect, countsById, outboxSize, sha256, sleep, artifact, DESKTOP, PHONE, assertBuilt } from './browser.mjs';

before(assertBuilt);
const env = stackAndBrowser();

test('consent granted: product → double-clicked add to cart → purchase reaches Meta once per event', async () => {
  const context = await env.browser.newContext(DESKTOP);
  const zaraz = [];
  await context.exposeFunction('__recordZaraz', (name, data) => { zaraz.push({ name, data }); });
  await context.addInitScript(() => { window.zaraz = { track: (name, data) => window.__recordZaraz(name, data) }; });
  const page = await context.newPage();
  const w = watch(page);
  const posts = await recordCollect(page);
  try {
    await page.goto(`${env.stack.url}/`);
    // Nothing leaves before the visitor answers the banner.
    await page.waitForSelector('#consent-banner');
    await sleep(300);
    assert.equal(posts.length, 0, 'no /collect before consent');
    await page.click('#consent-accept');
    await page.waitForSelector('#consent-banner', { state: 'detached' });
    const cookies = await context.cookies(env.stack.url);
    assert.equal(cookies.find((c) => c.name === 'ek_consent')?.value, 'granted');
    assert.equal(await page.locator('[data-testid=product-card]').count(), 6);

    await page.click('[data-testid=product-card][data-id=sku-lamp]');
    await page.waitForURL(/\/product\?id=sku-lamp$/);
    assert.equal(await page.textContent('#product-name'), 'Aurora desk lamp');
    await page.dblclick('#add-to-cart');
    await page.waitForFunction(() => document.querySelector('#add-feedback').textContent.includes('Added'));
    assert.equal(await page.textContent('#cart-count'), '1', 'a double click is one add');
    await page.screenshot({ path: artifact('shop-product-desktop.png') });

    await page.click('#go-to-cart');
    await page.waitForURL(/\/cart$/);
    assert.equal(await page.locator('[data-testid=cart-row]').count(), 1);
    assert.equal(await page.textContent('[data-testid=cart-qty]'), '1');
    assert.equal(await page.getAttribute('#cart-total', 'data-value'), '89');
    await page.fill('#checkout-email', '  Jane.Doe@Example.com ');
    await page.click('#place-order');
    await page.waitForURL(/\/success\?order=/);
    const orderId = await page.textContent('#order-id');
    assert.match(orderId, /^order-[0-9a-f-]{36}$/);
    assert.equal(await page.textContent('#cart-count'), '0');

    const byName = (name) => env.stack.meta.received().filter((e) => e.event_name === name);
    await waitFor(() => ['ViewContent', 'AddToCart', 'Purchase'].every((n) => byName(n).length > 0), { ms: 20000, what: 'the three events at Meta' });
    // Let stragglers (retries, beacons, next-page confirmations) land before counting.
    await waitFor(async () => (await outboxSize(page)) === 0, { what: 'an empty outbox' });
    await sleep(3000);

    for (const name of ['ViewContent', 'AddToCart', 'Purchase']) assert.equal(byName(name).length, 1, `${name} delivered once`);
    for (const [id, n] of countsById(env.stack)) assert.equal(n, 1, `event ${id} delivered ${n} times`);

    const [view] = byName('ViewContent');
    assert.equal(view.event_source_url, `${env.stack.url}/product?id=sku-lamp`);
    assert.deepEqual(view.custom_data, { content_ids: ['sku-lamp'], content_type: 'product', value: 89, currency: 'EUR' });
    assert.equal(view.user_data.em, undefined, 'no email outside Purchase');
    const [add] = byName('AddToCart');
    assert.deepEqual(add.custom_data, { content_ids: ['sku-lamp'], content_type: 'product', value: 89, currency: 'EUR' });
    assert.equal(add.user_data.em, undefined);
    const [purchase] = byName('Purchase');
    assert.equal(purchase.event_id, orderId, 'the order id is the Purchase event id');
    assert.equal(purchase.custom_data.value, 89);
    assert.equal(purchase.custom_data.currency, 'EUR');
    assert.deepEqual(purchase.custom_data.content_ids, ['sku-lamp']);
    assert.equal(purchase.user_data.em, sha256('jane.doe@example.com'), 'the checkout email, normalised and hashed');
    assert.match(purchase.user_data.fbp ?? '', /^fb\.1\.\d+\.\d+$/, 'the first-party _fbp the worker set');

    // The browser only ever sent one AddToCart id, and Zaraz got the same ids as the server copies.
    const sentAdds = new Set(posts.flatMap((p) => p.body.data).filter((e) => e.event_name === 'AddToCart').map((e) => e.event_id));
    assert.deepEqual([...sentAdds], [add.event_id]);
    assert.ok(posts.every((p) => p.body.consent === 'granted'));
    for (const name of ['ViewContent', 'AddToCart', 'Purchase']) {
      const calls = zaraz.filter((z) => z.name === name);
      assert.equal(calls.length, 1, `zaraz.track(${name}) once`);
      assert.equal(calls[0].data.event_id, byName(name)[0].event_id, `${name}: Zaraz and the server share the id`);
    }
    assert.equal(zaraz.find((z) => z.name === 'Purchase').data.em, undefined, 'no personal data to Zaraz');

    // A reload of the confirmation page is the same order: nothing new is sent.
    const before = posts.length;
    await page.reload();
    await sleep(1500);
    assert.equal(posts.slice(before).flatMap((p) => p.body.data).filter((e) => e.event_name === 'Purchase').length, 0);
    w.check();
  } finally {
    await context.close();
  }
});

test('phone-sized shop: the pages fit 390 px and work by tap', async () => {
  const context = await env.browser.newContext(PHONE);
  const page = await context.newPage();
  const w = watch(page);
  try {
    await page.goto(`${env.stack.url}/`);
    await page.tap('#consent-accept');
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok((await overflow()) <= 0, 'no horizontal scroll on the home page');
    await page.screenshot({ path: artifact('shop-home-phone.png'), fullPage: true });
    await page.tap('[data-testid=product-card][data-id=sku-tote]');
    await page.waitForURL(/sku-tote/);
    await page.tap('#add-to-cart');
    await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '1');
    assert.ok((await overflow()) <= 0, 'no horizontal scroll on the product page');
    await page.goto(`${env.stack.url}/cart`);
    assert.ok((await overflow()) <= 0, 'no horizontal scroll in the cart');
    await page.screenshot({ path: artifact('shop-cart-phone.png'), fullPage: true });
    w.check();
  } finally {
    await context.close();
  }
});
