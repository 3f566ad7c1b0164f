//! upstash-local: the Upstash Redis REST protocol in front of a real redis-server.
//!
//! It is edgekeeper's store for `make dev` and for every test: the worker talks to it exactly as it
//! talks to Upstash in production. Besides the protocol it keeps a bounded request log and accepts
//! injected faults under `/__control/*` (same token), so tests can count round trips and break the
//! store on purpose.
//!
//! Usage: `upstash-local --listen 127.0.0.1:8079 --redis 127.0.0.1:6379 --token <token>`
//! (or `UPSTASH_LOCAL_LISTEN`, `UPSTASH_LOCAL_REDIS`, `UPSTASH_LOCAL_TOKEN`). Port 0 picks a free port;
//! the first line on stdout is `upstash-local listening on http://<addr>`.

mod control;
mod protocol;
mod resp;

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

use control::Control;
use resp::Pool;

pub struct AppState {
    pub pool: Pool,
    pub token: String,
    pub control: Control,
}

struct Args {
    listen: String,
    redis: String,
    token: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = std::env::var("UPSTASH_LOCAL_LISTEN").unwrap_or_else(|_| "127.0.0.1:8079".into());
    let mut redis = std::env::var("UPSTASH_LOCAL_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into());
    let mut token = std::env::var("UPSTASH_LOCAL_TOKEN").unwrap_or_default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--redis" => redis = value()?,
            "--token" => token = value()?,
            "-h" | "--help" => {
                println!("usage: upstash-local --listen HOST:PORT --redis HOST:PORT --token TOKEN");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let redis = redis.trim_start_matches("redis://").trim_end_matches('/').to_string();
    if token.is_empty() {
        return Err("a token is required (--token or UPSTASH_LOCAL_TOKEN)".into());
    }
    Ok(Args { listen, redis, token })
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("upstash-local: {e}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("upstash-local: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("bound socket has an address");
    let state = Arc::new(AppState { pool: Pool::new(args.redis.clone()), token: args.token, control: Control::default() });
    let app = protocol::router(state.clone());
    println!("upstash-local listening on http://{addr} (redis at {})", args.redis);

    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let (app, state) = (app.clone(), state.clone());
        // The "drop" fault: the connection is cut with no response, as a crashed proxy would.
        let service = hyper::service::service_fn(move |req| {
            let (app, state) = (app.clone(), state.clone());
            async move {
                // Control calls are exempt: a test must always be able to clear the fault.
                if !req.uri().path().starts_with("/__control") && state.control.take_drop() {
                    return Err(std::io::Error::other("injected fault: connection dropped"));
                }
                app.oneshot(req).await.map_err(|never| match never {})
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
