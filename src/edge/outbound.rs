//! `fetch` as the crate's [`Outbound`]: every outbound call bounded by its timeout (the request is
//! aborted when the timer wins), plus the runtime's clock and randomness.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{AbortController, Delay, Fetch, Headers, Method as WMethod, Request, RequestInit};

use crate::http::{Method, Outbound, OutboundRequest, OutboundResponse, TransportError};

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
