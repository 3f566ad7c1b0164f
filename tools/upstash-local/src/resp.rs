//! A minimal RESP2 client and connection pool for talking to a real redis-server.
//!
//! Written by hand instead of using a redis crate so that the server sees exactly what redis said:
//! error replies inside pipelines and `EXEC` arrays stay per-command errors, and every HTTP request
//! borrows its own connection, so concurrent `MULTI`s never nest on a shared socket.

use std::io;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A RESP2 reply as redis sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

pub struct Conn {
    stream: BufReader<TcpStream>,
}

/// Nesting guard: redis never sends deeper replies than this for the commands we proxy, and a bound
/// keeps a corrupted stream from recursing without limit.
const MAX_DEPTH: usize = 64;

impl Conn {
    pub async fn connect(addr: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream: BufReader::new(stream) })
    }

    /// Writes every command in one buffer, then reads one reply per command.
    pub async fn run(&mut self, commands: &[Vec<Vec<u8>>]) -> io::Result<Vec<Reply>> {
        let mut buf = Vec::with_capacity(64 * commands.len());
        for cmd in commands {
            encode_command(&mut buf, cmd);
        }
        self.stream.get_mut().write_all(&buf).await?;
        let mut out = Vec::with_capacity(commands.len());
        for _ in commands {
            out.push(self.read_reply(0).await?);
        }
        Ok(out)
    }

    async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = self.stream.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "redis closed the connection"));
        }
        if line.len() < 2 || line[line.len() - 2] != b'\r' {
            return Err(bad("line not terminated by CRLF"));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn read_reply(&mut self, depth: usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Reply>> + Send + '_>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Err(bad("reply nested too deeply"));
            }
            let line = self.read_line().await?;
            let (kind, rest) = line.split_first().ok_or_else(|| bad("empty reply line"))?;
            let text = String::from_utf8_lossy(rest).into_owned();
            match kind {
                b'+' => Ok(Reply::Simple(text)),
                b'-' => Ok(Reply::Error(text)),
                b':' => text.parse().map(Reply::Int).map_err(|_| bad("bad integer")),
                b'$' => {
                    let len: i64 = text.parse().map_err(|_| bad("bad bulk length"))?;
                    if len < 0 {
                        return Ok(Reply::Nil);
                    }
                    let mut data = vec![0u8; len as usize + 2];
                    self.stream.read_exact(&mut data).await?;
                    data.truncate(len as usize);
                    Ok(Reply::Bulk(data))
                }
                b'*' => {
                    let len: i64 = text.parse().map_err(|_| bad("bad array length"))?;
                    if len < 0 {
                        return Ok(Reply::Nil);
                    }
                    let mut items = Vec::with_capacity(len.min(1024) as usize);
                    for _ in 0..len {
                        items.push(self.read_reply(depth + 1).await?);
                    }
                    Ok(Reply::Array(items))
                }
                _ => Err(bad("unknown reply type")),
            }
        })
    }
}

/// Errors that mean the socket was dead before redis could act on the command.
fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn encode_command(buf: &mut Vec<u8>, args: &[Vec<u8>]) {
    buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Idle connections are reused; a connection that saw an I/O error is dropped, never returned.
pub struct Pool {
    addr: String,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl Pool {
    pub fn new(addr: String) -> Pool {
        Pool { addr, idle: Mutex::new(Vec::new()), max_idle: 128 }
    }

    pub async fn run(&self, commands: &[Vec<Vec<u8>>]) -> io::Result<Vec<Reply>> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let was_pooled = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => Conn::connect(&self.addr).await?,
        };
        let replies = match conn.run(commands).await {
            Ok(r) => r,
            // A pooled socket may have been closed by a redis restart: try once on a fresh one.
            Err(e) if was_pooled && is_stale(&e) => {
                conn = Conn::connect(&self.addr).await?;
                conn.run(commands).await?
            }
            Err(e) => return Err(e),
        };
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        Ok(replies)
    }
}
