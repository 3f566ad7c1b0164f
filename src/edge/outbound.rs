//! `fetch` as the crate's [`Outbound`]: every outbound call bounded by its timeout (the request is
//! aborted when the timer wins), plus the runtime's clock and randomness.

use std::time::Duration;

use futures_util::future::{select, Either};
use wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::{AbortController, Delay};

use crate::http::{Method, Outbound, OutboundRequest, OutboundResponse, TransportError};

pub struct WorkerOutbound;

fn net(e: impl std::fmt::Display) -> TransportError {
    TransportError::Network(e.to_string())
}

/// One call, at the `fetch` level: the response body is read with one `arrayBuffer()` rather than
/// a stream of chunks (each chunk read, and the reader's release, crosses into JS; the release
/// even builds an error with a stack trace).
async fn send_once(req: OutboundRequest, signal: worker::AbortSignal) -> Result<OutboundResponse, TransportError> {
    use wasm_bindgen::JsCast;
    let js = |e: wasm_bindgen::JsValue| net(e.as_string().unwrap_or_else(|| "fetch failed".into()));
    let headers = web_sys::Headers::new().map_err(js)?;
    for (k, v) in &req.headers {
        headers.set(k, v).map_err(js)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(match req.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
    });
    init.set_headers(&headers);
    init.set_signal(Some(&signal));
    if let Some(body) = &req.body {
        init.set_body(&js_sys::Uint8Array::from(body.as_slice()));
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: web_sys::Response = JsFuture::from(global.fetch_with_str_and_init(&req.url, &init)).await.map_err(js)?.unchecked_into();
    let status = resp.status();
    let headers = worker::Headers(resp.headers()).entries().collect();
    let buf = JsFuture::from(resp.array_buffer().map_err(js)?).await.map_err(js)?;
    Ok(OutboundResponse { status, headers, body: js_sys::Uint8Array::new(&buf).to_vec() })
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
