//! `fetch` as the crate's [`Outbound`]: every outbound call bounded by its timeout (the runtime's
//! own `AbortSignal.timeout`, which aborts the request and its body read), plus the runtime's clock
//! and randomness.

use std::time::Duration;

use wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::Delay;

use crate::http::{Method, Outbound, OutboundRequest, OutboundResponse, TransportError};

pub struct WorkerOutbound;

fn net(e: impl std::fmt::Display) -> TransportError {
    TransportError::Network(e.to_string())
}

impl Outbound for WorkerOutbound {
    /// One call, at the `fetch` level: the response body is read with one `arrayBuffer()` rather than
    /// a stream of chunks (each chunk read, and the reader's release, crosses into JS; the release
    /// even builds an error with a stack trace). The deadline is `AbortSignal.timeout`: one native
    /// timer, where an `AbortController` raced against a `setTimeout` future cost two JS closures, a
    /// `clearTimeout` and a wake-up of the executor per call (benches/profile.mjs). Response headers
    /// are copied only when the caller reads them (each one is a call into JS).
    async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        use wasm_bindgen::JsCast;
        let timeout = req.timeout_ms;
        let js = |e: wasm_bindgen::JsValue| {
            let name = js_sys::Reflect::get(&e, &"name".into()).ok().and_then(|n| n.as_string());
            if matches!(name.as_deref(), Some("TimeoutError" | "AbortError")) {
                return TransportError::Timeout(timeout);
            }
            net(e.as_string().or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message()))).unwrap_or_else(|| "fetch failed".into()))
        };
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
        init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(timeout)));
        if let Some(body) = &req.body {
            init.set_body(&js_sys::Uint8Array::from(body.as_slice()));
        }
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let resp: web_sys::Response = JsFuture::from(global.fetch_with_str_and_init(&req.url, &init)).await.map_err(js)?.unchecked_into();
        let status = resp.status();
        let headers = if req.response_headers { worker::Headers(resp.headers()).entries().collect() } else { Vec::new() };
        let buf = JsFuture::from(resp.array_buffer().map_err(js)?).await.map_err(js)?;
        Ok(OutboundResponse { status, headers, body: js_sys::Uint8Array::new(&buf).to_vec() })
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
