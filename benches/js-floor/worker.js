// The floor of `benches/compare.mjs`: the least any /collect worker can do with the same I/O as
// edgekeeper and the JS baseline, and nothing else. Read the body, one store request (a SET NX of the
// event id: the claim), one queue send, a 202; no validation, no normalisation, no hashing, no rate
// limit, no client library. `GET /health` answers without any I/O.
//
// It is not a product: it is there so the bench can show how much of a worker's cost under
// Miniflare is the runtime's (the HTTP in and out, the store fetch, the queue, GC) and therefore
// out of reach of any worker's code. A worker cannot be more than floor/baseline times faster than
// the baseline; if that ratio is under 2, so is every implementation's.
//
// Bindings: UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, EVENTS (queue producer).

const json = (body, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === '/health') return json({ status: 'ok' });
    if (pathname !== '/collect' || request.method !== 'POST') return json({ error: { code: 'not_found', message: 'not found' } }, 404);
    let event;
    try {
      event = JSON.parse(await request.text());
    } catch {
      return json({ error: { code: 'invalid_json', message: 'body is not JSON' } }, 400);
    }
    const id = String(event?.event_id ?? '');
    const r = await fetch(env.UPSTASH_REDIS_REST_URL, {
      method: 'POST',
      headers: { authorization: `Bearer ${env.UPSTASH_REDIS_REST_TOKEN}` },
      body: JSON.stringify(['SET', `floor:${id}`, '1', 'NX', 'EX', '172800']),
    });
    const { result } = await r.json();
    if (result !== 'OK') return json({ accepted: [], duplicates: [id], rejected: [] }, 202);
    await env.EVENTS.send(event);
    return json({ accepted: [id], duplicates: [], rejected: [] }, 202);
  },

  async queue(batch) {
    for (const message of batch.messages) {
      console.log('SPY ' + JSON.stringify(message.body));
      message.ack();
    }
  },
};
