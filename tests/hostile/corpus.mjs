// The hostile-input corpus: requests a careless or malicious client sends. Every one must get a
// 4xx JSON error (`{"error": {"code", "message"}}`, or for /collect a 400 whose rejected events carry
// one), never a 5xx, never a panic. Built from families of cases; `hostile.test.mjs` replays them.

const now = () => Math.floor(Date.now() / 1000);
const good = (extra = {}) => ({
  event_name: 'ViewContent',
  event_id: 'hostile-base',
  event_source_url: 'https://shop.example/p/1',
  user_data: { em: 'x@example.com' },
  ...extra,
});
const json = (v) => JSON.stringify(v);
const cases = [];
const add = (family, name, req) => cases.push({ family, name, method: 'POST', path: '/collect', headers: { 'content-type': 'application/json' }, ...req });
const body = (family, name, b, headers) => add(family, name, { body: b, ...(headers ? { headers } : {}) });

// 1. Malformed JSON.
for (const b of ['{', '}', '[', '{"a":}', '{"event_name":"PageView",}', "{'single':'quotes'}", 'nul', 'undefined', 'NaN', '{"a":1}{"b":2}',
  '{"event_id":"x" "event_name":"y"}', '\u0000', '{"a":"\\u"}', '{"a":"\\x41"}', '{"a":01}', '{"a":1e}', '{"a":.5}', '{"a":+1}', '[1,]', ' ']) {
  body('malformed-json', JSON.stringify(b).slice(0, 30), b);
}
// 2. Wrong top-level shapes.
for (const v of [[], [1, 2], 'string', 42, true, null, { data: 'x' }, { data: {} }, { data: [] }, { data: null }, { data: [1] }, { data: ['x'] },
  { data: [[]] }, { data: [null] }, { data: [good()], extra: 1 }, { data: [good()], consent: 'maybe' }, { data: [good()], consent: 5 },
  { data: [good()], consent: { ad_storage: 'yes' } }, { data: [good()], consent: { unknown_signal: 'granted' } },
  { data: [good()], test_event_code: 'TEST' }, { data: [good()], dry_run: true }, { data: [good()], dry_run: 'yes' },
  { data: [good()], test_event_code: 'bad code!' }, { data: [good()], test_event_code: 7 }]) {
  body('shape', json(v).slice(0, 40), json(v));
}
// 3. Wrong types for every field.
const WRONG = [null, 1, -1, 1.5, true, [], {}, 'x'.repeat(3000)];
for (const field of ['event_name', 'event_id', 'event_time', 'event_source_url', 'action_source', 'user_data', 'custom_data',
  'data_processing_options', 'data_processing_options_country', 'data_processing_options_state', 'opt_out', 'referrer_url']) {
  for (const w of WRONG) {
    const e = good({ [field]: w });
    if (field === 'event_time' && typeof w === 'number' && Number.isInteger(w)) continue; // plausible numbers are tested below
    if (field === 'opt_out' && w === true) continue;
    if ((field === 'data_processing_options_country' || field === 'data_processing_options_state') && (w === 1)) continue;
    if (field === 'event_source_url' || field === 'referrer_url') { if (w === null) continue; }
    // Valid values of these fields (an empty object or list is allowed).
    if (['user_data', 'custom_data'].includes(field) && JSON.stringify(w) === '{}') continue;
    if (field === 'data_processing_options' && JSON.stringify(w) === '[]') continue;
    body('wrong-type', `${field}=${json(w).slice(0, 20)}`, json(e));
  }
}
// 4. Numbers out of range.
for (const [name, e] of [
  ['event_time 1e308', good({ event_time: 1e308 })], ['event_time -1', good({ event_time: -1 })], ['event_time 0', good({ event_time: 0 })],
  ['event_time far future', good({ event_time: now() + 86400 })], ['event_time 8 days old', good({ event_time: now() - 8 * 86400 })],
  ['event_time huge ms', good({ event_time: 9e15 })],
  ['value 1e400', { ...good({ event_name: 'Purchase' }), custom_data: { value: '1e400', currency: 'EUR' } }],
  ['value negative', { ...good({ event_name: 'Purchase' }), custom_data: { value: -3, currency: 'EUR' } }],
  ['value NaN string', { ...good({ event_name: 'Purchase' }), custom_data: { value: 'NaN', currency: 'EUR' } }],
  ['value Infinity string', { ...good({ event_name: 'Purchase' }), custom_data: { value: 'Infinity', currency: 'EUR' } }],
  ['value 1e13', { ...good({ event_name: 'Purchase' }), custom_data: { value: 1e13, currency: 'EUR' } }],
  ['ldu country 99999', good({ data_processing_options: ['LDU'], data_processing_options_country: 99999 })],
  ['ldu state -5', good({ data_processing_options: ['LDU'], data_processing_options_state: -5 })],
]) body('numbers', name, json(e));
// 5. Deep nesting.
for (const depth of [6, 50, 129, 1000, 20000]) {
  let inner = '1';
  for (let i = 0; i < depth; i++) inner = `{"a":${inner}}`;
  body('nesting', `custom_data depth ${depth}`, `{"event_name":"ViewContent","event_id":"deep","event_source_url":"https://s.example/","custom_data":${inner}}`);
  body('nesting', `array depth ${depth}`, '['.repeat(depth) + ']'.repeat(depth));
}
// 6. Sizes.
body('size', '70 KB body', json(good({ custom_data: { pad: 'x'.repeat(70_000) } })));
body('size', '10 MB body', 'x'.repeat(10 * 1024 * 1024));
body('size', '10 MB JSON string', json({ data: [good({ event_id: 'y'.repeat(10 * 1024 * 1024) })] }));
body('size', '51 events', json({ data: Array.from({ length: 51 }, (_, i) => good({ event_id: `e${i}` })) }));
body('size', '1000 events', json({ data: Array.from({ length: 1000 }, (_, i) => good({ event_id: `e${i}` })) }));
body('size', 'custom_data over 8 KB', json(good({ custom_data: { contents: Array.from({ length: 200 }, (_, i) => ({ id: `sku-${i}-padding-padding`, quantity: 1 })) } })));
body('size', '11 emails', json(good({ user_data: { em: Array.from({ length: 11 }, (_, i) => `u${i}@example.com`) } })));
body('size', '2 KB email', json(good({ user_data: { em: `${'a'.repeat(2000)}@example.com` } })));
// 7. Invalid UTF-8 and control characters.
for (const bytes of [[0xff], [0xc3, 0x28], [0xe2, 0x28, 0xa1], [0xf0, 0x28, 0x8c, 0xbc], [0xed, 0xa0, 0x80], [0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]]) {
  add('utf8', `bytes ${bytes.map((b) => b.toString(16)).join(' ')}`, { body_b64: Buffer.from(bytes).toString('base64') });
}
body('control', 'NUL in event_id', json(good({ event_id: 'a\u0000b' })));
body('control', 'tab in event_id', json(good({ event_id: 'a\tb' })));
body('control', 'space in event_id', json(good({ event_id: 'a b' })));
body('control', 'unicode event_id', json(good({ event_id: 'é-ü-🔥' })));
body('control', '129-char event_id', json(good({ event_id: 'x'.repeat(129) })));
body('control', 'empty event_id', json(good({ event_id: '' })));
body('control', 'missing event_id', json(good({ event_id: undefined })));
// 8. CRLF, script, and URL tricks.
for (const url of ['https://shop.example/\r\nSet-Cookie: a=b', 'https://shop.example/<script>alert(1)</script>', 'javascript:alert(1)',
  'data:text/html,<h1>x</h1>', 'https://shop.example/"onmouseover="x', 'ftp://shop.example/', '//shop.example/', 'https://', 'http:///path',
  'https://shop.example/ space', `https://shop.example/${'a'.repeat(3000)}`, 'https://shop.example/\u0000', 'file:///etc/passwd',
  'https://shop.example/{x}', 'https://shop.example/`x`']) {
  body('url', `event_source_url ${json(url).slice(0, 30)}`, json(good({ event_source_url: url })));
  body('url', `referrer_url ${json(url).slice(0, 30)}`, json(good({ referrer_url: url })));
}
for (const v of ['<script>alert(1)</script>', '<SCRIPT SRC=//x>', 'javascript:alert(1)', 'a\r\nb', 'a\nb', '<iframe src=x>', 'x\u0007y']) {
  body('custom-data', `content_name ${json(v).slice(0, 20)}`, json(good({ custom_data: { content_name: v } })));
  body('custom-data', `nested ${json(v).slice(0, 20)}`, json(good({ custom_data: { contents: [{ id: v }] } })));
}
// 9. Prototype pollution and unknown keys.
for (const k of ['__proto__', 'constructor', 'prototype']) {
  body('pollution', `top-level ${k}`, `{"event_name":"ViewContent","event_id":"p","event_source_url":"https://s.example/","${k}":{"polluted":true}}`);
  body('pollution', `user_data ${k}`, `{"event_name":"ViewContent","event_id":"p","event_source_url":"https://s.example/","user_data":{"${k}":{"x":1}}}`);
  body('pollution', `custom_data ${k}`, `{"event_name":"ViewContent","event_id":"p","event_source_url":"https://s.example/","custom_data":{"${k}":{"x":1}}}`);
  body('pollution', `batch ${k}`, `{"data":[],"${k}":{"x":1}}`);
}
for (const k of ['foo', 'Event_Name', 'eventName', 'client_ip', 'access_token', 'pixel_id', '']) {
  body('unknown-field', `event ${k || '(empty)'}`, json({ ...good(), [k]: 1 }));
  body('unknown-field', `user_data ${k || '(empty)'}`, json(good({ user_data: { [k]: 'x' } })));
}
body('unknown-field', 'custom_data bad key', json(good({ custom_data: { 'bad key!': 1 } })));
// 10. Event semantics.
for (const [name, e] of [
  ['unknown event', good({ event_name: 'Hack' })], ['lowercase event', good({ event_name: 'purchase' })],
  ['purchase no value', good({ event_name: 'Purchase' })], ['purchase no currency', { ...good({ event_name: 'Purchase' }), custom_data: { value: 1 } }],
  ['bad currency', { ...good({ event_name: 'Purchase' }), custom_data: { value: 1, currency: 'XYZ' } }],
  ['currency number', { ...good({ event_name: 'Purchase' }), custom_data: { value: 1, currency: 978 } }],
  ['action source tv', good({ action_source: 'tv' })], ['LDU wrong', good({ data_processing_options: ['GDPR'] })],
  ['hashed fbp', good({ user_data: { fbp: 'a'.repeat(64) } })], ['fbc wrong', good({ user_data: { fbc: 'not-an-fbc' } })],
  ['ip with port', good({ user_data: { client_ip_address: '203.0.113.7:443' } })], ['ip garbage', good({ user_data: { client_ip_address: 'localhost' } })],
  ['em object', good({ user_data: { em: { a: 1 } } })], ['ph bool', good({ user_data: { ph: true } })], ['nested array', good({ user_data: { em: [['a@b.co']] } })],
  ['website without url', { event_name: 'ViewContent', event_id: 'nourl', action_source: 'website' }],
]) body('semantics', name, json(e));
// 11. Content types and methods on /collect.
for (const ct of ['application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'image/png', 'text/html', 'application/javascript']) {
  body('content-type', ct, json(good()), { 'content-type': ct });
}
for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) cases.push({ family: 'method', name: `${method} /collect`, method, path: '/collect', headers: {} });
add('origin', 'unlisted origin', { body: json(good()), headers: { 'content-type': 'application/json', origin: 'https://evil.example' } });
add('origin', 'null origin', { body: json(good()), headers: { 'content-type': 'application/json', origin: 'null' } });
add('origin', 'preflight from evil', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
// 12. Admin endpoints: tokens and bodies.
const admin = (name, method, path, headers, b) => cases.push({ family: 'admin', name, method, path, headers, ...(b === undefined ? {} : { body: b }) });
for (const path of ['/admin/stats', '/admin/dlq', '/admin/match-quality', '/admin/zaraz/diff', '/admin/zaraz/history', '/admin/cache/explain?url=https://s.example/']) {
  admin(`${path} no token`, 'GET', path, {});
  admin(`${path} wrong token`, 'GET', path, { authorization: 'Bearer wrong-wrong-wrong-wrong' });
  admin(`${path} basic auth`, 'GET', path, { authorization: 'Basic YWRtaW46YWRtaW4=' });
  admin(`${path} empty bearer`, 'GET', path, { authorization: 'Bearer ' });
}
for (const path of ['/admin/dlq/replay', '/admin/store/purge', '/admin/cache/purge', '/admin/zaraz/sync', '/admin/zaraz/secret-handling']) {
  admin(`${path} no token`, 'POST', path, {}, '{}');
}
const ADMIN = 'Bearer test-admin-token-9d2e4f6a8b';
for (const [path, b] of [['/admin/dlq/replay', '{'], ['/admin/dlq/replay', '{}'], ['/admin/dlq/replay', '{"event_ids":"x"}'], ['/admin/dlq/replay', '{"all":"yes"}'],
  ['/admin/store/purge', '{"module":"*"}'], ['/admin/store/purge', '{"module":"evt","extra":1}'], ['/admin/store/purge', '[]'],
  ['/admin/zaraz/sync', '{"dry_run":"yes"}'], ['/admin/zaraz/sync', '{"remove":"x"}'], ['/admin/zaraz/sync', '{"unknown":1}'], ['/admin/zaraz/sync', '{'],
  ['/admin/zaraz/secret-handling', '{}'], ['/admin/zaraz/secret-handling', '{"keeps_secrets":"no"}'],
  ['/admin/store/purge', 'x'.repeat(20_000)],
  ['/admin/cache/purge', '[]'], ['/admin/cache/purge', '{}'], ['/admin/cache/purge', '{"targets":"/p"}'], ['/admin/cache/purge', '{"targets":[{"url":"javascript:alert(1)"}]}'],
  ['/admin/cache/purge', '{"targets":[{"prefix":"*"}]}'], ['/admin/cache/purge', `{"targets":[${'{"prefix":"/a"},'.repeat(100)}{"prefix":"/b"}]}`], ['/admin/cache/purge', '{']]) {
  admin(`${path} body ${b.slice(0, 20)}`, 'POST', path, { authorization: ADMIN, 'content-type': 'application/json' }, b);
}
for (const url of ['javascript:alert(1)', 'not a url', '', 'https://s.example/\r\nx']) {
  admin(`explain url ${json(url)}`, 'GET', `/admin/cache/explain?url=${encodeURIComponent(url)}`, { authorization: ADMIN });
}
// 13. Paths under the worker's prefixes.
for (const path of ['/admin', '/admin/', '/admin/%00', '/admin/stats/extra', '/collect/x', '/health/x', '/__edgekeeper/x', '/admin/DLQ', '/admin/stats%2F..']) {
  cases.push({ family: 'paths', name: path, method: 'GET', path, headers: { authorization: ADMIN } });
}
cases.push({ family: 'paths', name: 'POST /health', method: 'POST', path: '/health', headers: {}, body: '{}' });

export const corpus = cases;
