//! Native test support: a real redis-server and the real upstash-local in front of it, on free
//! loopback ports, stopped when dropped. Needs `redis-server` on PATH and `upstash-local` built
//! (`make test` does both; `UPSTASH_LOCAL_BIN` overrides the binary path).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Secret, UpstashConfig};

pub struct LocalStore {
    pub url: String,
    pub token: String,
    redis: Child,
    store: Child,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl LocalStore {
    pub fn start() -> LocalStore {
        let redis_port = free_port();
        let dir = std::env::temp_dir().join(format!("ek-native-{}-{redis_port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let redis = Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let bin = std::env::var("UPSTASH_LOCAL_BIN")
            .unwrap_or_else(|_| format!("{}/target/debug/upstash-local", env!("CARGO_MANIFEST_DIR")));
        let token = format!("native-test-token-{redis_port}");
        let mut store = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--redis", &format!("127.0.0.1:{redis_port}"), "--token", &token])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (build it with `cargo build -p upstash-local`)"));
        let mut line = String::new();
        BufReader::new(store.stdout.take().expect("stdout")).read_line(&mut line).expect("upstash-local banner");
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("listening URL").to_string();
        LocalStore { url, token, redis, store, _dir: TempDir(dir) }
    }

    pub fn config(&self) -> UpstashConfig {
        let mut c = UpstashConfig::new(self.url.clone(), Secret::new(self.token.clone()));
        c.timeout_ms = 1000;
        c.deadline_ms = 2000;
        c
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        let _ = self.store.kill();
        let _ = self.redis.kill();
        let _ = self.store.wait();
        let _ = self.redis.wait();
    }
}

impl LocalStore {
    /// The store's request counter: how many HTTP requests it has served so far.
    pub fn log_seq(&self) -> u64 {
        let v: serde_json::Value = ureq::get(&format!("{}/__control/log?since=999999999999", self.url))
            .set("authorization", &format!("Bearer {}", self.token))
            .call()
            .expect("store control log")
            .into_json()
            .expect("json");
        v["result"]["last_seq"].as_u64().expect("last_seq")
    }

    /// Injects faults in the store (see tools/upstash-local: latency_ms, status, hang, drop, times).
    pub fn set_faults(&self, faults: serde_json::Value) {
        ureq::post(&format!("{}/__control/faults", self.url))
            .set("authorization", &format!("Bearer {}", self.token))
            .send_json(faults)
            .expect("store faults");
    }
}
