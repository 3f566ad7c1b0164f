// The demo shop: product list, product page, cart (localStorage) and order confirmation. Tracking
// goes through the tracker (tracker.js, loaded before this module), which owns ids, consent and retries.

const noop = { track: () => ({ event_id: null, fresh: true }), hashEmail: async () => null, showConsentBanner() {}, newId: () => `${Date.now()}-${Math.random().toString(16).slice(2)}` };
const ek = globalThis.edgekeeper || noop; // the shop works even if the tracker failed to load

export const CURRENCY = 'EUR';
export const PRODUCTS = [
  { id: 'sku-lamp', name: 'Aurora desk lamp', price: 89, kind: 'lamp', bg: '#e0e7ff', fg: '#4338ca',
    blurb: 'Warm, dimmable light on a weighted brass base. Two hours of reading, one tap to switch.' },
  { id: 'sku-notebook', name: 'Field notebook, set of 3', price: 24.5, kind: 'notebook', bg: '#fef3c7', fg: '#b45309',
    blurb: 'Dot-grid, 96 pages each, lay-flat binding and a cover that survives a rainy commute.' },
  { id: 'sku-pourover', name: 'Ceramic pour-over', price: 38, kind: 'pourover', bg: '#dcfce7', fg: '#15803d',
    blurb: 'Hand-glazed dripper with a matching cup. Brews one clean, bright cup in four minutes.' },
  { id: 'sku-beanie', name: 'Merino beanie', price: 32.9, kind: 'beanie', bg: '#fce7f3', fg: '#be185d',
    blurb: 'Soft 100 % merino rib knit. Warm when it is cold, breathable when it is not.' },
  { id: 'sku-tote', name: 'Waxed canvas tote', price: 56, kind: 'tote', bg: '#e0f2fe', fg: '#0369a1',
    blurb: 'Water-resistant waxed cotton with leather handles and an inner zip pocket.' },
  { id: 'sku-pen', name: 'Brass rollerball pen', price: 45, kind: 'pen', bg: '#f1f5f9', fg: '#334155',
    blurb: 'Machined from solid brass; it develops a patina that is yours alone. Refillable.' },
];
export const product = (id) => PRODUCTS.find((p) => p.id === id) || null;

const money = new Intl.NumberFormat('en-IE', { style: 'currency', currency: CURRENCY });
const round2 = (n) => Math.round(n * 100) / 100;
const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---- product art: small hand-drawn SVGs, no image requests -------------------------------------
const NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
const DRAWINGS = {
  lamp: (fg) => [svg('ellipse', { cx: 100, cy: 126, rx: 34, ry: 7, fill: fg, opacity: 0.35 }), svg('rect', { x: 97, y: 62, width: 6, height: 62, rx: 3, fill: fg }),
    svg('path', { d: 'M70 66 L86 28 H114 L130 66 Z', fill: fg }), svg('circle', { cx: 100, cy: 74, r: 7, fill: '#fde68a' })],
  notebook: (fg) => [svg('rect', { x: 62, y: 28, width: 70, height: 96, rx: 6, fill: fg, opacity: 0.45, transform: 'rotate(-8 97 76)' }),
    svg('rect', { x: 68, y: 26, width: 70, height: 96, rx: 6, fill: fg }), svg('rect', { x: 122, y: 26, width: 6, height: 96, fill: '#fff', opacity: 0.6 })],
  pourover: (fg) => [svg('path', { d: 'M66 40 H134 L114 82 H86 Z', fill: fg }), svg('rect', { x: 74, y: 86, width: 52, height: 38, rx: 8, fill: fg, opacity: 0.6 }),
    svg('path', { d: 'M126 94 q16 0 16 12 q0 12 -16 12', fill: 'none', stroke: fg, 'stroke-width': 5, opacity: 0.6 })],
  beanie: (fg) => [svg('path', { d: 'M60 104 Q60 44 100 44 Q140 44 140 104 Z', fill: fg }), svg('rect', { x: 56, y: 98, width: 88, height: 22, rx: 6, fill: fg, opacity: 0.7 }),
    svg('circle', { cx: 100, cy: 38, r: 11, fill: fg, opacity: 0.8 })],
  tote: (fg) => [svg('path', { d: 'M80 56 Q80 26 100 26 Q120 26 120 56', fill: 'none', stroke: fg, 'stroke-width': 6 }),
    svg('rect', { x: 62, y: 52, width: 76, height: 74, rx: 8, fill: fg }), svg('rect', { x: 86, y: 76, width: 28, height: 18, rx: 3, fill: '#fff', opacity: 0.5 })],
  pen: (fg) => [svg('rect', { x: 40, y: 70, width: 120, height: 12, rx: 6, fill: fg, transform: 'rotate(-24 100 76)' }),
    svg('path', { d: 'M160 70 L176 76 L160 82 Z', fill: fg, transform: 'rotate(-24 100 76)' }), svg('rect', { x: 52, y: 66, width: 30, height: 4, rx: 2, fill: '#fbbf24', transform: 'rotate(-24 100 76)' })],
};
function art(p, cls = 'art') {
  const s = svg('svg', { viewBox: '0 0 200 150', class: cls, role: 'img', 'aria-label': p.name, preserveAspectRatio: 'xMidYMid slice' });
  s.append(svg('rect', { width: 200, height: 150, fill: p.bg }), ...(DRAWINGS[p.kind] || DRAWINGS.notebook)(p.fg));
  return s;
}

// ---- cart (localStorage) ----------------------------------------------------------------------
const CART_KEY = 'shop_cart';
const ORDER_KEY = 'shop_last_order';
function readJSON(storage, key, fallback) {
  try { const v = JSON.parse(storage.getItem(key)); return v ?? fallback; } catch { return fallback; }
}
function writeJSON(storage, key, value) {
  try { storage.setItem(key, JSON.stringify(value)); } catch { /* private mode: the cart lives for this page only */ }
}
export const cart = {
  items() {
    const raw = readJSON(localStorage, CART_KEY, []);
    return (Array.isArray(raw) ? raw : []).filter((i) => product(i.id) && Number.isInteger(i.qty) && i.qty > 0);
  },
  save(items) { writeJSON(localStorage, CART_KEY, items); renderCount(); },
  add(id, qty = 1) {
    const items = cart.items();
    const line = items.find((i) => i.id === id);
    if (line) line.qty += qty; else items.push({ id, qty });
    cart.save(items);
  },
  set(id, qty) { cart.save(cart.items().map((i) => (i.id === id ? { ...i, qty } : i)).filter((i) => i.qty > 0)); },
  clear() { cart.save([]); },
  count() { return cart.items().reduce((n, i) => n + i.qty, 0); },
  total() { return round2(cart.items().reduce((s, i) => s + product(i.id).price * i.qty, 0)); },
};
function renderCount() {
  const badge = $('#cart-count');
  if (badge) badge.textContent = String(cart.count());
}

// ---- pages -------------------------------------------------------------------------------------
function home() {
  const grid = $('#products');
  grid.replaceChildren(...PRODUCTS.map((p) => el('a', { class: 'card product-card', href: `/product?id=${encodeURIComponent(p.id)}`, 'data-testid': 'product-card', 'data-id': p.id },
    art(p),
    el('div', { class: 'body' }, el('span', { class: 'name', text: p.name }), el('span', { class: 'price', text: money.format(p.price) })))));
}

function productPage() {
  const id = new URLSearchParams(location.search).get('id');
  const p = product(id);
  const root = $('#product');
  if (!p) {
    document.title = 'Product not found — Edgekeeper Goods';
    root.replaceChildren(el('div', { class: 'card empty', 'data-testid': 'product-missing' },
      el('h1', { text: 'We could not find that product' }), el('p', { class: 'muted', text: 'It may have sold out. Have a look at the rest of the shop.' }),
      el('a', { class: 'btn btn-primary', href: '/', text: 'Back to the shop' })));
    return;
  }
  document.title = `${p.name} — Edgekeeper Goods`;
  const feedback = el('p', { class: 'feedback', id: 'add-feedback', role: 'status', 'aria-live': 'polite' });
  let feedbackTimer = null;
  const button = el('button', { class: 'btn btn-primary', id: 'add-to-cart', type: 'button', 'data-testid': 'add-to-cart', text: 'Add to cart' });
  button.addEventListener('click', () => {
    const data = { content_ids: [p.id], content_type: 'product', value: p.price, currency: CURRENCY };
    // One click burst (a double click) is one intent: one event id, one line added.
    const r = ek.track('AddToCart', data, { burstKey: `AddToCart:${p.id}` });
    if (r && r.event_id && r.fresh === false) return;
    cart.add(p.id);
    feedback.textContent = `Added to your cart (${cart.count()} item${cart.count() === 1 ? '' : 's'}).`;
    clearTimeout(feedbackTimer);
    feedbackTimer = setTimeout(() => { feedback.textContent = ''; }, 4000);
  });
  root.replaceChildren(
    el('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, el('a', { href: '/', text: 'Shop' }), ' / ', el('span', { class: 'muted', text: p.name })),
    el('div', { class: 'product-layout' },
      art(p),
      el('div', { class: 'product-info' },
        el('h1', { id: 'product-name', text: p.name }),
        el('p', { class: 'price', id: 'product-price', 'data-value': p.price, text: money.format(p.price) }),
        el('p', { class: 'muted', text: p.blurb }),
        el('div', { class: 'product-actions' }, button, el('a', { class: 'btn btn-ghost', href: '/cart', id: 'go-to-cart', text: 'View cart' })),
        feedback,
        el('p', { class: 'muted small', text: 'Free returns within 30 days. Ships in 1–2 working days.' }))));
  ek.track('ViewContent', { content_ids: [p.id], content_type: 'product', value: p.price, currency: CURRENCY });
}

function cartPage() {
  const list = $('#cart-items');
  const empty = $('#cart-empty');
  const layout = $('#cart-layout');
  const totalEl = $('#cart-total');
  const subtotalEl = $('#cart-subtotal');
  const render = () => {
    const items = cart.items();
    empty.hidden = items.length > 0;
    layout.hidden = items.length === 0;
    list.replaceChildren(...items.map(({ id, qty }) => {
      const p = product(id);
      const change = (d) => () => { cart.set(id, qty + d); render(); };
      return el('li', { class: 'cart-row', 'data-testid': 'cart-row', 'data-id': id },
        art(p),
        el('div', { class: 'meta' },
          el('a', { class: 'name', href: `/product?id=${encodeURIComponent(id)}`, text: p.name }),
          el('span', { class: 'muted small', text: `${money.format(p.price)} each` }),
          el('div', { class: 'qty' },
            el('button', { class: 'btn btn-ghost btn-small', type: 'button', 'aria-label': `One fewer ${p.name}`, text: '−', on: { click: change(-1) } }),
            el('output', { 'data-testid': 'cart-qty', text: String(qty) }),
            el('button', { class: 'btn btn-ghost btn-small', type: 'button', 'aria-label': `One more ${p.name}`, text: '+', on: { click: change(1) } }))),
        el('span', { class: 'price', text: money.format(round2(p.price * qty)) }));
    }));
    const total = cart.total();
    subtotalEl.textContent = money.format(total);
    totalEl.textContent = money.format(total);
    totalEl.dataset.value = String(total);
  };
  render();
  window.addEventListener('storage', (e) => { if (e.key === CART_KEY) render(); });

  const form = $('#checkout-form');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const items = cart.items();
    if (!items.length) return;
    const button = $('#place-order');
    button.disabled = true;
    try {
      const email = $('#checkout-email').value;
      // Only the hash is kept (sessionStorage, for the confirmation page); the worker hashes anyway.
      const em = email.trim() ? await ek.hashEmail(email) : null;
      const order = {
        id: `order-${ek.newId()}`,
        items: items.map(({ id, qty }) => ({ id, qty, price: product(id).price, name: product(id).name })),
        total: cart.total(),
        em,
        placed_at: Date.now(),
      };
      writeJSON(sessionStorage, ORDER_KEY, order);
      cart.clear();
      location.assign(`/success?order=${encodeURIComponent(order.id)}`);
    } catch (err) {
      button.disabled = false;
      console.warn('checkout failed', err);
    }
  });
}

function successPage() {
  const wanted = new URLSearchParams(location.search).get('order');
  const order = readJSON(sessionStorage, ORDER_KEY, null);
  const root = $('#order');
  if (!order || !wanted || order.id !== wanted) {
    root.replaceChildren(el('h1', { text: 'No recent order' }), el('p', { class: 'muted', text: 'This page confirms an order right after checkout.' }),
      el('a', { class: 'btn btn-primary', href: '/', text: 'Back to the shop' }));
    return;
  }
  $('#order-id').textContent = order.id;
  const totalEl = $('#order-total');
  totalEl.textContent = money.format(order.total);
  totalEl.dataset.value = String(order.total);
  $('#order-items').replaceChildren(...order.items.map((i) => el('div', { class: 'summary-line' },
    el('span', { text: `${i.qty} × ${i.name}` }), el('span', { class: 'price', text: money.format(round2(i.price * i.qty)) }))));
  const data = {
    content_ids: order.items.map((i) => i.id),
    content_type: 'product',
    contents: order.items.map((i) => ({ id: i.id, quantity: i.qty, item_price: i.price })),
    num_items: order.items.reduce((n, i) => n + i.qty, 0),
    value: order.total,
    currency: CURRENCY,
    order_id: order.id,
  };
  // The order id is the event id: a reload of this page is the same Purchase.
  ek.track('Purchase', data, { event_id: order.id, user_data: order.em ? { em: order.em } : undefined });
  if (order.em) writeJSON(sessionStorage, ORDER_KEY, { ...order, em: null });
}

// ---- boot --------------------------------------------------------------------------------------
function boot() {
  renderCount();
  const privacy = $('#privacy-choices');
  if (privacy) privacy.addEventListener('click', () => ek.showConsentBanner());
  const page = document.body.dataset.page;
  ek.track('PageView');
  if (page === 'home') home();
  else if (page === 'product') productPage();
  else if (page === 'cart') cartPage();
  else if (page === 'success') successPage();
  window.addEventListener('storage', (e) => { if (e.key === CART_KEY) renderCount(); });
}

boot();
