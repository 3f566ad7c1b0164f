//! The Workers glue (wasm32 only): entry points, `Env` as a [`VarSource`], `fetch` as [`Outbound`],
//! and the pass-through to the site's assets and origin. No decisions are made here.

use std::time::Duration;

use futures_util::future::{select, Either};
use wasm_bindgen::JsCast;
use worker::{
    console_log, event, AbortController, Context, Delay, Env, Fetch, Headers, MessageExt, Method as WMethod, QueueRetryOptionsBuilder, Request,
    RequestInit, Response, ScheduleContext, ScheduledEvent,
};

use crate::capi::deliver::{self, Fate, Item};

use crate::config::{Config, VarSource};
use crate::error::AppError;
use crate::events::outbox::{EventSink, QueuedEvent};
use crate::http::{Method, Outbound, OutboundRequest, OutboundResponse, Reply, TransportError};
use crate::request::Incoming;
use crate::router::{self, Ctx, Route};
use crate::upstash::Isolate;

/// The isolate's state lives as long as the isolate; Workers run one request at a time per thread,
/// so a leaked thread-local is the idiomatic home.
fn isolate() -> &'static Isolate {
    thread_local! {
        static ISOLATE: &'static Isolate = Box::leak(Box::default());
    }
    ISOLATE.with(|i| *i)
}

struct EnvVars<'a>(&'a Env);

impl VarSource for EnvVars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        // Vars and secrets are both plain strings at run time.
        self.0.var(name).ok().map(|v| v.to_string())
    }
}

pub struct WorkerOutbound;

fn net(e: impl std::fmt::Display) -> TransportError {
    TransportError::Network(e.to_string())
}

async fn send_once(req: OutboundRequest, signal: worker::AbortSignal) -> Result<OutboundResponse, TransportError> {
    let headers = Headers::new();
    for (k, v) in &req.headers {
        headers.set(k, v).map_err(net)?;
    }
    let mut init = RequestInit::new();
    init.with_method(match req.method {
        Method::Get => WMethod::Get,
        Method::Post => WMethod::Post,
        Method::Put => WMethod::Put,
        Method::Delete => WMethod::Delete,
    })
    .with_headers(headers);
    if let Some(body) = &req.body {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let request = Request::new_with_init(&req.url, &init).map_err(net)?;
    let mut resp = Fetch::Request(request).send_with_signal(&signal).await.map_err(net)?;
    let status = resp.status_code();
    let headers = resp.headers().entries().collect();
    let body = resp.bytes().await.map_err(net)?;
    Ok(OutboundResponse { status, headers, body })
}

impl Outbound for WorkerOutbound {
    async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let timeout = req.timeout_ms;
        let controller = AbortController::default();
        let signal = controller.signal();
        let call = Box::pin(send_once(req, signal));
        let timer = Delay::from(Duration::from_millis(timeout as u64));
        match select(call, timer).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => {
                controller.abort();
                Err(TransportError::Timeout(timeout))
            }
        }
    }

    async fn sleep(&self, ms: u32) {
        Delay::from(Duration::from_millis(ms as u64)).await;
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    fn random(&self) -> f64 {
        js_sys::Math::random()
    }
}

/// The `EVENTS` Queue binding as the intake's sink.
struct QueueSink<'a>(&'a Env);

impl EventSink for QueueSink<'_> {
    async fn send_batch(&self, messages: &[QueuedEvent]) -> Result<(), String> {
        let queue = self.0.queue("EVENTS").map_err(|e| format!("EVENTS queue binding: {e}"))?;
        // As JSON text: serde_wasm_bindgen would turn maps into JS Maps, which do not survive the trip.
        let bodies: Vec<String> = messages.iter().map(|m| serde_json::to_string(m).unwrap_or_default()).collect();
        queue.send_batch(bodies).await.map_err(|e| e.to_string())
    }
}

fn to_response(reply: Reply, head: bool) -> worker::Result<Response> {
    let headers = Headers::new();
    for (k, v) in &reply.headers {
        headers.append(k, v)?;
    }
    let builder = Response::builder().with_status(reply.status).with_headers(headers);
    Ok(if head { builder.empty() } else { builder.fixed(reply.body) })
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
}

/// Not a worker path: the site's static assets first (GET/HEAD), then the origin. On a Cloudflare
/// route `fetch(request)` reaches the zone's origin; locally `ORIGIN_URL` names it.
async fn site(req: Request, env: &Env) -> worker::Result<Response> {
    let method = req.method();
    if matches!(method, WMethod::Get | WMethod::Head) {
        if let Ok(assets) = env.assets("ASSETS") {
            let resp = assets.fetch_request(req.clone()?).await?;
            if resp.status_code() != 404 {
                return Ok(resp);
            }
        }
    }
    let origin = Config::from_source(&EnvVars(env)).ok().and_then(|c| c.origin_url);
    let url = req.url()?;
    match origin {
        Some(base) => {
            let target = format!("{base}{}{}", url.path(), url.query().map(|q| format!("?{q}")).unwrap_or_default());
            // Copies method, headers and the (streamed) body of the original request.
            let init: &worker::web_sys::RequestInit = req.inner().unchecked_ref();
            let forwarded = worker::web_sys::Request::new_with_str_and_init(&target, init)?;
            Fetch::Request(Request::from(forwarded)).send().await
        }
        None if is_local(url.host_str().unwrap_or("")) => {
            to_response(AppError::NoOrigin.into_reply(), method == WMethod::Head)
        }
        None => Fetch::Request(req).send().await,
    }
}

/// Reads at most `limit` bytes of body: `Content-Length` is checked first, but a chunked or lying
/// body is cut off while streaming, never buffered whole.
async fn read_capped(req: &mut Request, limit: usize) -> Result<Vec<u8>, AppError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let too_large = AppError::PayloadTooLarge { limit };
    if let Ok(Some(len)) = req.headers().get("content-length") {
        if len.parse::<usize>().map_or(true, |n| n > limit) {
            return Err(too_large);
        }
    }
    let mut body = Vec::new();
    let Ok(mut stream) = req.stream() else { return Ok(body) };
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest { code: "body_unreadable", message: e.to_string() })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn incoming(req: &mut Request, limit: usize) -> Result<Incoming, AppError> {
    let url = req.url().map_err(|e| AppError::BadRequest { code: "bad_url", message: e.to_string() })?;
    let body = read_capped(req, limit).await?;
    Ok(Incoming {
        method: req.method().to_string(),
        path: url.path().to_string(),
        query: url.query().map(str::to_string),
        host: url.host_str().unwrap_or("").to_ascii_lowercase(),
        headers: req.headers().entries().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
        body,
    })
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    let method = req.method();
    let route = router::route(method.as_ref(), &req.path());
    if route == Route::Site {
        return site(req, &env).await;
    }
    let head = method == WMethod::Head;
    let cfg = Config::from_source(&EnvVars(&env));
    let reply = match incoming(&mut req, route.body_limit(cfg.as_ref().ok())).await {
        Ok(inc) => {
            let ctx = Ctx { cfg: &cfg, out: &WorkerOutbound, iso: isolate(), sink: &QueueSink(&env) };
            router::handle(route, &inc, &ctx).await
        }
        Err(e) => e.into_reply(),
    };
    to_response(reply, head)
}

/// The queue consumer: `edgekeeper-events` batches go to Meta; `edgekeeper-events-dlq` (messages the
/// queue gave up on after max_retries) are stored as dead letters. Each message is acked only when
/// its fate is final; everything else is retried with a delay, so nothing accepted is lost.
#[event(queue)]
async fn queue(batch: worker::MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> worker::Result<()> {
    let cfg = match Config::from_source(&EnvVars(&env)) {
        Ok(c) => c,
        Err(errors) => {
            let names: Vec<_> = errors.iter().map(|e| e.variable).collect();
            console_log!("{{\"level\":\"error\",\"msg\":\"queue batch retried: configuration invalid\",\"variables\":{:?}}}", names);
            batch.retry_all_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(60).build());
            return Ok(());
        }
    };
    let messages = batch.messages()?;
    let now = js_sys::Date::now();
    let mut items = Vec::with_capacity(messages.len());
    let mut slots = Vec::with_capacity(messages.len());
    for m in &messages {
        let parsed = match m.body() {
            serde_json::Value::String(text) => serde_json::from_str::<QueuedEvent>(text),
            other => serde_json::from_value::<QueuedEvent>(other.clone()),
        };
        match parsed {
            Ok(msg) => {
                slots.push(Some(items.len()));
                items.push(Item { age_ms: (now - msg.accepted_at_ms as f64).max(0.0), msg });
            }
            Err(e) => {
                // Not ours or corrupted: nothing to deliver, nothing personal to keep.
                console_log!("{{\"level\":\"error\",\"msg\":\"unreadable queue message dropped\",\"error\":{:?}}}", e.to_string());
                slots.push(None);
            }
        }
    }
    let report = if batch.queue().ends_with("-dlq") {
        deliver::bury(&items, "the queue gave up after its max_retries", &cfg, &WorkerOutbound, isolate()).await
    } else {
        deliver::deliver(&items, &cfg, &WorkerOutbound, isolate()).await
    };
    let mut tally = [0u32; 4];
    for (m, slot) in messages.iter().zip(slots) {
        match slot.and_then(|i| report.fates[i].clone()) {
            None => m.ack(),
            Some(Fate::Retry { delay_secs, .. }) => {
                tally[2] += 1;
                m.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay_secs).build());
            }
            Some(Fate::DeadLettered { .. }) => {
                tally[3] += 1;
                m.ack();
            }
            Some(Fate::Delivered) | Some(Fate::AlreadyDelivered) => {
                tally[0] += 1;
                m.ack();
            }
        }
    }
    tally[1] = report.capi_requests;
    console_log!(
        "{{\"level\":\"info\",\"msg\":\"queue batch\",\"queue\":{:?},\"messages\":{},\"delivered\":{},\"capi_requests\":{},\"retried\":{},\"dead_lettered\":{}}}",
        batch.queue(), messages.len(), tally[0], tally[1], tally[2], tally[3]
    );
    Ok(())
}

/// The cron tick: probes the store so an outage shows in logs even without traffic.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let cfg = Config::from_source(&EnvVars(&env));
    let reply = crate::health::report(&cfg, &WorkerOutbound, isolate()).await;
    let status = reply.body_json()["status"].as_str().unwrap_or("unknown").to_string();
    console_log!("{{\"level\":\"info\",\"msg\":\"cron health\",\"cron\":\"{}\",\"status\":\"{}\"}}", event.cron(), status);
}
